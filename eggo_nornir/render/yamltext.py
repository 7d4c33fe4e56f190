"""YAML text of rendered files, through libyaml's emitter when PyYAML has it.

Why: `yaml.safe_dump` is PyYAML's pure-Python emitter, and a kubeconfig is mostly long base64
scalars that it inspects character by character. At 1000 nodes that was about two thirds of
the controller's CPU for a whole deploy (bench/controller_scale.py --profile). libyaml's
`CSafeDumper` writes the same bytes (tests/unit/render/test_yamltext.py compares the two on a
rendered cluster), so switching changes no file on a deployed host and restarts nothing.
"""

from __future__ import annotations

from typing import Any

import yaml

_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(doc: Any, **options: Any) -> str:
    """`yaml.safe_dump(doc, **options)`, with the C emitter when available."""
    return yaml.dump(doc, Dumper=_DUMPER, **options)
