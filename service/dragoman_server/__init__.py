"""Dragoman server: gRPC translation and summarisation with Hugging Face models."""

__version__ = "0.1.0"
