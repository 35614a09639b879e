"""`mlops.v1`: the stubs generated from the protos beside them (`python proto/generate.py`)."""
