"""Generate the Python protobuf/gRPC code in client/dragoman/v1 from protos/, and copy the gRPC
service config (protos/dragoman/v1/service_config.json) beside it as the client's package data.

Usage: python scripts/gen_protos.py [OUT_DIR]   (OUT_DIR defaults to client/)
"""

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
# protos/google/api: googleapis files vendored for buf; their Python modules come from
# googleapis-common-protos, so only our own files are generated.
PROTOS = sorted(
    str(p.relative_to(PROTO_ROOT))
    for p in PROTO_ROOT.rglob("*.proto")
    if p.relative_to(PROTO_ROOT).parts[0] != "google"
)
DESCRIPTOR_SET = "dragoman_descriptor.binpb"
# The retry and load-balancing policy every gRPC client should use (the Python client loads it).
SERVICE_CONFIG = PROTO_ROOT / "dragoman" / "v1" / "service_config.json"
# google/protobuf/descriptor.proto (imported by google/api/*.proto) ships with grpc_tools.
WELL_KNOWN = resources.files("grpc_tools") / "_proto"


def generate(out_dir: Path) -> None:
    """Write dragoman/v1/*_pb2*.py(i) under out_dir."""
    (out_dir / "dragoman" / "v1").mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{WELL_KNOWN}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        # The descriptors with their comments, for the OpenAPI document's descriptions.
        f"--descriptor_set_out={out_dir / 'dragoman' / 'v1' / DESCRIPTOR_SET}",
        "--include_source_info",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    shutil.copyfile(SERVICE_CONFIG, out_dir / "dragoman" / "v1" / SERVICE_CONFIG.name)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "client")
