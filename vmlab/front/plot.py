"""Faults against frames, one line per policy (matplotlib, Agg: no display)."""

from __future__ import annotations

from typing import Any


# Equal counts draw equal lines (fifo and clock often agree): thick solid
# lines underneath, thin dashed ones on top, so both stay visible.
STYLE = {
    "fifo": dict(marker="o", markersize=9, linewidth=4, alpha=0.6),
    "lru": dict(marker="s", markersize=6, linewidth=2),
    "opt": dict(marker="^", markersize=6, linewidth=2),
    "clock": dict(marker="x", markersize=8, linewidth=1.5, linestyle="--"),
    "random": dict(marker="d", markersize=5, linewidth=1, linestyle=":"),
}


def figure(data: dict[str, Any], title: str):
    """The figure: faults against frames, one line per policy, whole-number ticks."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    policies = list(dict.fromkeys(r["policy"] for r in data["results"]))
    curve = data.get("curve", False)            # the miss ratio, a line without marks
    for policy in policies:
        pts = sorted((r["frames"], r["faults"]) for r in data["results"] if r["policy"] == policy)
        ys = [y / data["refs"] if curve else y for _, y in pts]
        style = {k: v for k, v in STYLE.get(policy, {}).items() if not (curve and k.startswith("marker"))}
        ax.plot([x for x, _ in pts], ys, label=policy, **style)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # frames and faults come whole
    if not curve:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("frames")
    ax.set_ylabel("miss ratio" if curve else "page faults")
    ax.set_title(f"{title} ({data['refs']} references, {data['pages']} pages)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_faults(data: dict[str, Any], out: str, title: str) -> None:
    """Write the figure to ``out`` as PNG."""
    import matplotlib.pyplot as plt
    fig = figure(data, title)
    fig.savefig(out, format="png")
    plt.close(fig)
