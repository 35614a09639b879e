"""The gRPC model service: every capability exists here first (docs/architecture.md maps it)."""
