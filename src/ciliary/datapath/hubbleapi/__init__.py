"""Hubble's gRPC API, the subset ciliary's agent serves: `flow_pb2` (package `flow`),
`observer_pb2` and `observer_pb2_grpc` (package `observer`, service `observer.Observer`).

Generated from `flow.proto` and `observer.proto` beside this file by grpcio-tools; see
README.md here for what they hold and how to regenerate them. The messages register under
Hubble's own names (`flow.Flow`, `observer.GetFlowsRequest`, ...) in protobuf's default
pool, so a process cannot also import another copy of Hubble's generated code.
"""
