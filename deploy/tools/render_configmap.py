"""Write deploy/k8s/configmap-flows.yaml from platypus.yaml and flows/*.yaml.

    python deploy/tools/render_configmap.py

The ConfigMap must hold every file byte for byte (tests/test_deploy.py checks it),
so run this after changing platypus.yaml or a flow.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "deploy" / "k8s" / "configmap-flows.yaml"

HEADER = """\
# platypus.yaml and the flow files, as the project folder of every Platypus pod.
# Each value is a byte-for-byte copy of the file in the repository:
# tests/test_deploy.py fails when a flow or platypus.yaml changes and this
# manifest does not (deploy/tools/render_configmap.py writes it again).
# The Deployments place the keys with `items`, so the flow keys land under
# flows/ and platypus.yaml beside it.
# After `kubectl apply -f` of this file, restart the Deployments: Platypus reads
# its flows when it starts.
apiVersion: v1
kind: ConfigMap
metadata:
  name: platypus-project
  labels:
    app.kubernetes.io/name: platypus
    app.kubernetes.io/instance: platypus
    app.kubernetes.io/component: config
data:
"""


def _block(name: str, text: str) -> str:
    if not text.endswith("\\n") and not text.endswith("\n"):
        raise SystemExit(f"{name} must end with a newline to be kept byte for byte")
    body = "".join(f"    {line}" if line.strip() else "\n" for line in text.splitlines(True))
    return f"  {name}: |\n{body}"


def render() -> str:
    files = [ROOT / "platypus.yaml", *sorted((ROOT / "flows").glob("*.yaml"))]
    flows = [p for p in files if not p.name.endswith(".test.yaml")]
    return HEADER + "".join(_block(p.name, p.read_text()) for p in flows)


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(ROOT)}")
