"""Each service's configuration section, at the bottom layer with the rest of the config
(the service packages in `edge_recorder/uplinks/` import their section from here)."""
