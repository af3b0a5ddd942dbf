"""The HTTP face of the server: HTTP/JSON transcoded from the proto's `google.api.http`
annotations, the LibreTranslate-compatible API and the article desk page, on one aiohttp
application in the gRPC server's event loop, behind the same admission, error model, request ids,
access log and metrics as gRPC (`middleware.py`)."""
