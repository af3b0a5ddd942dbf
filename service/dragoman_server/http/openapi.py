"""The OpenAPI 3 document of the transcoded API, generated from the proto descriptors: one
operation per `google.api.http` rule, one schema per message and enum (proto3 JSON mapping:
lowerCamelCase property names, enums as their value names), `required` from
`google.api.field_behavior = REQUIRED`, descriptions from the proto's comments (the descriptor
set with source info that scripts/gen_protos.py ships beside the generated code), and the
google.rpc.Status error shape."""

from __future__ import annotations

import functools
from importlib import resources

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from dragoman.v1 import dragoman_pb2

from .transcoding import NDJSON, SERVICE, SSE, bindings

_SCALARS = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    # proto3 JSON writes 64-bit integers as strings.
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_REF = "#/components/schemas/"
# FileDescriptorProto field numbers, as SourceCodeInfo paths use them.
_MESSAGE, _ENUM, _SERVICE, _FIELD, _VALUE, _METHOD = 4, 5, 6, 2, 2, 2


@functools.cache
def comments() -> dict[tuple[str, ...], str]:
    """Leading comments of dragoman.proto, by ("Message",), ("Message", "field"), ("Enum",),
    ("Service", "Method"); empty when the descriptor set is not there."""
    try:
        data = resources.files("dragoman.v1").joinpath("dragoman_descriptor.binpb").read_bytes()
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    (file,) = [f for f in files if f.name == dragoman_pb2.DESCRIPTOR.name]
    found = {}
    for location in file.source_code_info.location:
        text = " ".join(location.leading_comments.split())
        if not text:
            continue
        path = list(location.path)
        if path[:1] == [_MESSAGE] and len(path) in (2, 4):
            message = file.message_type[path[1]]
            if len(path) == 2:
                found[(message.name,)] = text
            elif path[2] == _FIELD:
                found[(message.name, message.field[path[3]].name)] = text
        elif path[:1] == [_ENUM] and len(path) == 2:
            found[(file.enum_type[path[1]].name,)] = text
        elif path[:1] == [_SERVICE] and len(path) == 4 and path[2] == _METHOD:
            service = file.service[path[1]]
            found[(service.name, service.method[path[3]].name)] = text
    return found


def _described(schema: dict, *key: str) -> dict:
    text = comments().get(key)
    if not text:
        return schema
    if "$ref" in schema:  # OpenAPI 3.0 ignores siblings of $ref
        return {"allOf": [schema], "description": text}
    return {**schema, "description": text}


def _required(field: FieldDescriptor) -> bool:
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def _field_schema(field: FieldDescriptor) -> dict:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        schema = {"$ref": _REF + field.message_type.name}
    elif field.type == FieldDescriptor.TYPE_ENUM:
        schema = {"$ref": _REF + field.enum_type.name}
    else:
        schema = dict(_SCALARS[field.type])
    if field.is_repeated:
        return {"type": "array", "items": schema}
    return schema


def _message_schema(descriptor) -> dict:
    schema: dict = {
        "type": "object",
        "properties": {
            f.json_name: _described(_field_schema(f), descriptor.name, f.name)
            for f in descriptor.fields
        },
        "additionalProperties": False,
    }
    required = [f.json_name for f in descriptor.fields if _required(f)]
    if required:
        schema["required"] = required
    return _described(schema, descriptor.name)


def _status_schema() -> dict:
    return {
        "type": "object",
        "description": "google.rpc.Status in the JSON shape of Google's APIs",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "description": "the HTTP status"},
                    "status": {"type": "string", "description": "the gRPC code's name"},
                    "message": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"@type": {"type": "string"}},
                            "additionalProperties": True,
                        },
                    },
                },
                "required": ["code", "status", "message"],
            }
        },
        "required": ["error"],
    }


def _operation(binding) -> dict:
    method = binding.method
    output = {"$ref": _REF + method.output_type.name}
    if binding.streaming:
        content = {
            NDJSON: {"schema": output},
            SSE: {"schema": {"type": "string", "description": "`data: <JSON message>` events"}},
        }
        description = (
            "A server stream: one JSON message per line (application/x-ndjson), or server-sent "
            "events with `Accept: text/event-stream`; an error after the first message is the "
            'last item (`{"error": ...}` / `event: error`).'
        )
    else:
        content = {"application/json": {"schema": output}}
        description = None
    operation: dict = {
        "operationId": f"{SERVICE.name}_{method.name}",
        "summary": f"dragoman.v1.Dragoman/{method.name}",
        "tags": [SERVICE.name],
        "responses": {
            "200": {"description": "OK", "content": content},
            "default": {
                "description": "An error (google.rpc.Status)",
                "content": {"application/json": {"schema": {"$ref": _REF + "Status"}}},
            },
        },
    }
    summary = comments().get((SERVICE.name, method.name))
    if summary:
        operation["summary"] = summary
    if description:
        operation["description"] = description
    if binding.body == "*":
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + method.input_type.name}}},
        }
    else:
        operation["parameters"] = [
            {
                "name": f.json_name,
                "in": "query",
                "required": _required(f),
                "schema": _field_schema(f),
            }
            for f in method.input_type.fields
        ]
    return operation


def _health_operation(name: str, description: str) -> dict:
    return {
        "operationId": name,
        "summary": description,
        "security": [],
        "responses": {
            "200": {"description": "SERVING"},
            "503": {"description": "NOT_SERVING"},
        },
    }


def openapi_document() -> dict:
    """The OpenAPI 3.0 document of the transcoded routes, /healthz and /readyz."""
    paths: dict[str, dict] = {}
    for binding in bindings():
        paths.setdefault(binding.path, {})[binding.verb.lower()] = _operation(binding)
    paths["/healthz"] = {"get": _health_operation("healthz", "Liveness")}
    paths["/readyz"] = {"get": _health_operation("readyz", "Readiness (mirrors gRPC health)")}
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3 document"}},
        }
    }
    schemas = {
        name: _message_schema(descriptor)
        for name, descriptor in dragoman_pb2.DESCRIPTOR.message_types_by_name.items()
    }
    schemas.update(
        {
            name: _described({"type": "string", "enum": [v.name for v in descriptor.values]}, name)
            for name, descriptor in dragoman_pb2.DESCRIPTOR.enum_types_by_name.items()
        }
    )
    schemas["Status"] = _status_schema()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Dragoman",
            "version": "v1",
            "description": "HTTP/JSON transcoding of dragoman.v1.Dragoman "
            "(google.api.http annotations of protos/dragoman/v1/dragoman.proto).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
