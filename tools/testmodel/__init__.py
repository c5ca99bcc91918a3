"""Helpers of tools/make-test-model: random-weight Canary checkpoints in NeMo's exact .nemo format."""
