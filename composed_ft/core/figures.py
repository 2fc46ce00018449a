"""Matplotlib without a display, and figures written atomically (a killed report leaves no half PNG)."""
from .io import atomic_path


def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    return plt


def save_fig(fig, path, dpi=110):
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
