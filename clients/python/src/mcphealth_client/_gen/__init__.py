"""Generated from proto/ by clients/python/generate.py with grpcio-tools 1.85.1. DO NOT EDIT."""
