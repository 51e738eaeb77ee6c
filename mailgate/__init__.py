"""The edge: bytes and sockets in and out, no business rules."""
