"""The gRPC edge of the server: servicers, protobuf <-> domain conversion and the
mapping of domain errors to gRPC status codes. Protobuf messages go no deeper."""
