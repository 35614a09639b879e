"""The gRPC transport: servicers that convert and delegate, the server, errors, auth."""
