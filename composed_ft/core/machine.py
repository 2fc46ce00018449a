"""A one-line description of the machine and software a result was produced on."""
import os
import platform


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe():
    import torch
    parts = [f"{cpu_model()}, {os.cpu_count()} cores"]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}")
    parts.append(f"Python {platform.python_version()}, torch {torch.__version__}")
    return "; ".join(parts)


def of_runs(results):
    """The 'Machine:' text of a table: the machines its runs' results.json name (the table's own machine
    only for runs from before results recorded one, said so)."""
    named = sorted({r.get("machine") for r in results if r.get("machine")})
    missing = sum(1 for r in results if not r.get("machine"))
    if not missing:
        return "; ".join(named) or "-"
    text = f"{missing} run(s) did not record theirs (older code); this table was generated on {describe()}"
    return "; ".join(named + [text])
