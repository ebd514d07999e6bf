"""Test doubles shipped with the package (scripted chat models, a loopback OpenAI-compatible replay
server, a synthetic segmenter and click engine) so that users' and our own tests run without weights, GPU or
API key."""
