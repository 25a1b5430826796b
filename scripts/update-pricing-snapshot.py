#!/usr/bin/env python3
"""Regenerates core/src/pricing/snapshot.json, the prices compiled into the binary and used
when there is neither a pricing cache file nor a network at first start.

Source: the price map bundled in the `litellm` wheel from PyPI
(`litellm/model_prices_and_context_window_backup.json`, MIT licence, Berri AI). It is
converted to the models.dev shape `PriceTable::from_models_dev` parses ($ per million tokens
under `<provider>.models.<id>.cost`), keeping only the providers the proxy routes:
LiteLLM's `anthropic` -> `anthropic`, `openai` -> `openai`, `gemini` -> `google`, and only
chat/responses models. Per-token dollars become $/M through `Decimal`, never through floats,
so `3e-06` is written as exactly `3`.

Usage: scripts/update-pricing-snapshot.py [LITELLM_VERSION]   (needs pip; default pinned)
"""

import datetime
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile
from decimal import Decimal

VERSION = sys.argv[1] if len(sys.argv) > 1 else "1.110.2"
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "core" / "src" / "pricing" / "snapshot.json"
MAP = "litellm/model_prices_and_context_window_backup.json"
PROVIDERS = {"anthropic": "anthropic", "openai": "openai", "gemini": "google"}
MODES = {"chat", "responses"}
MILLION = Decimal(1_000_000)


def per_million(value):
    """Per-token dollars as a $/M JSON number (int when whole), exact."""
    d = (Decimal(repr(value)) * MILLION).normalize()
    return int(d) if d == d.to_integral_value() else float(str(d))


def cost_of(entry, suffix=""):
    """models.dev cost fields from LiteLLM's, for the base rates or one tier suffix."""
    names = {
        "input": "input_cost_per_token",
        "output": "output_cost_per_token",
        "cache_read": "cache_read_input_token_cost",
        "cache_write": "cache_creation_input_token_cost",
    }
    cost = {}
    for field, name in names.items():
        value = entry.get(name + suffix)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            cost[field] = per_million(value)
    return cost


def main():
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "-d", work, f"litellm=={VERSION}"],
            check=True,
        )
        wheel = next(pathlib.Path(work).glob("litellm-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            prices = json.loads(z.read(MAP))

    doc = {pid: {"id": pid, "models": {}} for pid in PROVIDERS.values()}
    for key, entry in sorted(prices.items()):
        if not isinstance(entry, dict):
            continue
        target = PROVIDERS.get(entry.get("litellm_provider"))
        if target is None or entry.get("mode") not in MODES:
            continue
        model = key.split("/", 1)[1] if key.startswith("gemini/") else key
        # Fine-tune templates (`ft:…`) and region/route-qualified keys are not model ids a
        # client sends.
        if ":" in model or "/" in model:
            continue
        cost = cost_of(entry)
        if "input" not in cost or "output" not in cost:
            continue
        above = cost_of(entry, "_above_200k_tokens")
        if "input" in above and "output" in above:
            cost["context_over_200k"] = above
        doc[target]["models"][model] = {"id": model, "cost": cost}

    meta = {
        "source": f"pypi:litellm=={VERSION} ({MAP})",
        "license": "MIT",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }
    # `_snapshot` has no `models` member, so the models.dev parser skips it like any
    # malformed provider; the binary reads it for `doctor` and `/admin/pricing`.
    text = json.dumps({"_snapshot": meta, **doc}, separators=(",", ":"))
    OUT.write_text(text + "\n")
    counts = " ".join(f"{p}={len(doc[p]['models'])}" for p in doc)
    print(f"wrote {OUT} ({len(text)} bytes, {counts}, dated {meta['date']})")


if __name__ == "__main__":
    main()
