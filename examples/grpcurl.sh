#!/usr/bin/env bash
# Calling Dragoman with grpcurl (https://github.com/fullstorydev/grpcurl) through server
# reflection: no .proto needed. Usage: examples/grpcurl.sh [HOST:PORT]   (default localhost:50051)
#
# `buf curl` (npm @bufbuild/buf, installed in tests/node) does the same over reflection:
#   buf curl --protocol grpc --http2-prior-knowledge -d '{...}' http://HOST:PORT/dragoman.v1.Dragoman/Translate
set -euo pipefail
ADDR="${1:-localhost:50051}"

# What is served, and the contract itself.
grpcurl -plaintext "$ADDR" list
grpcurl -plaintext "$ADDR" describe dragoman.v1.Dragoman
grpcurl -plaintext "$ADDR" describe dragoman.v1.TranslateRequest

# Health: SERVING once every model is loaded and warmed up.
grpcurl -plaintext "$ADDR" grpc.health.v1.Health/Check

# The configured models and their state.
grpcurl -plaintext "$ADDR" dragoman.v1.Dragoman/ListModels

# Translate several texts at once; the source language is detected when left out.
grpcurl -plaintext -d '{
  "texts": ["O governo anunciou hoje novas medidas.", "A oposição criticou o plano."],
  "target_language": "en"
}' "$ADDR" dragoman.v1.Dragoman/Translate

# Stream a long text paragraph by paragraph (one JSON message per paragraph).
grpcurl -plaintext -d '{
  "texts": ["Primeiro parágrafo.\n\nSegundo parágrafo."],
  "source_language": "pt",
  "target_language": "en"
}' "$ADDR" dragoman.v1.Dragoman/TranslateStream

# Summarise into English bullets, whatever the source language.
grpcurl -plaintext -d '{
  "text": "O governo anunciou hoje novas medidas económicas para conter a inflação. ...",
  "target_language": "en",
  "length": "SUMMARY_LENGTH_SHORT",
  "format": "SUMMARY_FORMAT_BULLETS"
}' "$ADDR" dragoman.v1.Dragoman/Summarize

# Detect the language of a text.
grpcurl -plaintext -d '{"text": "Bom dia a todos"}' "$ADDR" dragoman.v1.Dragoman/DetectLanguage
