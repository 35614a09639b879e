"""REST gateway: FastAPI in front of the gRPC model service; no ML logic and no state."""
