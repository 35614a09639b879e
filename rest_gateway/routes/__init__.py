"""The gateway's routes, one module per resource; each only converts and calls the service."""
