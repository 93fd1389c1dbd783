"""The ambient audio streaming service (AAS): gRPC RecordAmbient, REST store-and-forward and the
WebSocket stream.
"""
