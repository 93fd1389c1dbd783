"""Browser code the fleet dashboard serves, locked with npm here and copied by vendor.py."""
