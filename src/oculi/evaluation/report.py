"""The evaluation result and its report: rich tables for the terminal, and ``metrics.json``, ``per_class.csv``,
``confusion_matrix.png`` and ``misclassified.png`` in a report folder.

Figures are drawn on matplotlib ``Figure`` objects with the Agg canvas (no pyplot, no display, no global backend
switch), so reports can be written from worker processes and servers."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

CONSOLE_CLASS_LIMIT = 20  # confusion-matrix rows/columns printed in the terminal
TABLE_CLASS_LIMIT = 50  # per-class rows printed in the terminal, and classes drawn in confusion_matrix.png
MISCLASSIFIED_GRID = 25

_LABELS = {"accuracy": "accuracy", "hamming": "hamming accuracy", "macro_precision": "macro precision",
           "macro_recall": "macro recall", "macro_f1": "macro F1", "threshold": "threshold"}


@dataclass
class EvaluationResult:
    """The outcome of :func:`oculi.evaluation.evaluate`.

    ``metrics``: overall numbers (``accuracy``; ``top_k_accuracy`` and ``top_k`` when asked; ``macro_precision``,
    ``macro_recall``, ``macro_f1``; multi-label adds ``hamming`` and ``threshold``). ``per_class``: class name →
    ``precision``, ``recall``, ``f1``, ``support`` (true images of the class). ``confusion``: ``C × C`` counts,
    rows = true class, columns = predicted class, in ``classes`` order (None for multi-label models).
    ``misclassified``: ``(image path, true, predicted, probability of the prediction)``, most confident first;
    multi-label entries name comma-separated class sets and the highest probability among the predicted classes.
    ``notes``: what was decided for the user (which split was evaluated). ``report_dir`` / ``files``: where the
    report was written (None / empty when no output folder was given). ``probabilities`` (``float [N, C]``),
    ``targets`` (class indices ``[N]`` or multi-hot ``[N, C]``), ``images`` and ``fingerprint`` (the data's
    :func:`~oculi.artifacts.dataset_fingerprint`) keep the raw outcome for thresholds and error analysis."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]] | None
    classes: list[str]
    misclassified: list[tuple[Path, str, str, float]]
    num_images: int
    model: str
    data: str
    multi_label: bool = False
    notes: list[str] = field(default_factory=list)
    report_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    probabilities: Any = None
    targets: Any = None
    images: list[Path] = field(default_factory=list)
    fingerprint: str = ""
    overlay: Any = None  # heat-map hook for top_losses.png (see oculi.evaluation.analysis)

    def error_analysis(self) -> dict[str, Any]:
        """``top_losses`` (highest loss first) and ``most_confused`` pairs (single-label), when the raw
        probabilities are kept; else empty."""
        from oculi.evaluation.analysis import confused_pairs, top_losses

        if self.probabilities is None:
            return {}
        found: dict[str, Any] = {"top_losses": top_losses(self.probabilities, self.targets, self.multi_label,
                                                          self.images, self.classes)}
        if self.confusion is not None:
            found["most_confused"] = confused_pairs(self.confusion, self.classes)
        return found

    @property
    def accuracy(self) -> float:
        """The overall accuracy (subset accuracy for multi-label models)."""
        return self.metrics["accuracy"]

    def to_dict(self) -> dict[str, Any]:
        """The content of ``metrics.json``: the overall metrics at the top level (plain numbers), then
        ``num_images``, ``model``, ``data``, ``classes``, ``per_class``, ``confusion_matrix`` (rows = true) and
        ``misclassified`` (``image``, ``true``, ``predicted``, ``probability``)."""
        return {
            **self.metrics,
            "num_images": self.num_images,
            "num_misclassified": len(self.misclassified),
            "multi_label": self.multi_label,
            "model": self.model,
            "data": self.data,
            "classes": self.classes,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion,
            "misclassified": [{"image": str(path), "true": true, "predicted": predicted,
                               "probability": round(prob, 6)}
                              for path, true, predicted, prob in self.misclassified],
            **({"error_analysis": analysis} if (analysis := self.error_analysis()) else {}),
        }

    def write(self, output: Path) -> dict[str, Path]:
        """Write the report into ``output`` (created): ``metrics.json``, ``per_class.csv``,
        ``confusion_matrix.png`` (single-label models) and ``misclassified.png``. Sets ``report_dir`` and
        ``files`` (what → path) and returns ``files``."""
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        files = {"metrics": output / "metrics.json", "per-class metrics": output / "per_class.csv"}
        files["metrics"].write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        write_per_class_csv(self.per_class, files["per-class metrics"])
        if self.confusion is not None:
            files["confusion matrix"] = output / "confusion_matrix.png"
            plot_confusion_matrix(self.confusion, self.classes, files["confusion matrix"],
                                  title=f"{self.num_images} images, accuracy {self.accuracy:.4f}")
        files["misclassified"] = output / "misclassified.png"
        plot_misclassified(self.misclassified, self.num_images, files["misclassified"])
        if self.probabilities is not None:
            from oculi.evaluation.analysis import plot_top_losses, top_losses

            files["top losses"] = plot_top_losses(top_losses(self.probabilities, self.targets, self.multi_label,
                                                             self.images, self.classes),
                                                  output / "top_losses.png", self.overlay)
        self.report_dir, self.files = output, files
        return files

    def render(self, console: Console) -> None:
        """Print the notes, the overall metrics, per-class precision/recall/F1 and the confusion matrix (the
        :data:`CONSOLE_CLASS_LIMIT` most frequent classes when there are more)."""
        for note in self.notes:
            console.print(f"[cyan]note:[/] {note}", soft_wrap=True)
        console.print(f"model: {self.model}\ndata: {self.data}", soft_wrap=True)
        console.print(_overall_table(self))
        console.print(_per_class_table(self))
        if self.confusion is not None:
            console.print(_confusion_table(self.confusion, self.classes))
        wrong = len(self.misclassified)
        console.print(f"{wrong} of {self.num_images} images misclassified"
                      + (" (most confident first):" if wrong else "."))
        for path, true, predicted, prob in self.misclassified[:5]:
            console.print(f"  {path}  true: {true} / pred: {predicted} (p={prob:.2f})", soft_wrap=True)
        pairs = self.error_analysis().get("most_confused", [])
        if pairs:
            console.print("most confused (true → predicted): " + "; ".join(
                f"{p['true']} → {p['predicted']} ×{p['count']}" for p in pairs[:5]), soft_wrap=True)


def most_frequent(support: list[int], limit: int) -> list[int]:
    """Indices of the ``limit`` classes with the largest ``support`` (ties: lower index first), in index order."""
    ranked = sorted(range(len(support)), key=lambda i: (-support[i], i))
    return sorted(ranked[:limit])


def _overall_table(result: EvaluationResult) -> Table:
    table = Table("metric", "value", title="Overall", title_justify="left")
    table.add_row("images", str(result.num_images))
    for key, value in result.metrics.items():
        if key == "top_k":
            continue
        if key == "top_k_accuracy":
            label = f"top-{result.metrics['top_k']} accuracy"
        elif key == "accuracy" and result.multi_label:
            label = "subset accuracy"
        else:
            label = _LABELS.get(key, key)
        table.add_row(label, f"{value:.4f}")
    return table


def _per_class_table(result: EvaluationResult) -> Table:
    names = result.classes
    support = [int(result.per_class[name]["support"]) for name in names]
    shown = range(len(names))
    caption = None
    if len(names) > TABLE_CLASS_LIMIT:
        shown = most_frequent(support, CONSOLE_CLASS_LIMIT)
        caption = (f"{CONSOLE_CLASS_LIMIT} most frequent of {len(names)} classes shown; every class is in "
                   "per_class.csv when --output is given.")
    table = Table("class", "precision", "recall", "F1", "support", title="Per class", title_justify="left",
                  caption=caption)
    for i in shown:
        row = result.per_class[names[i]]
        table.add_row(names[i], f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                      str(support[i]))
    return table


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _confusion_table(confusion: list[list[int]], classes: list[str]) -> Table:
    shown = list(range(len(classes)))
    caption = "rows: true class, columns: predicted class"
    if len(classes) > CONSOLE_CLASS_LIMIT:
        shown = most_frequent([sum(row) for row in confusion], CONSOLE_CLASS_LIMIT)
        caption += (f"; the {CONSOLE_CLASS_LIMIT} most frequent of {len(classes)} classes shown (confusion_matrix"
                    " in metrics.json has all)")
    table = Table(title="Confusion matrix", title_justify="left", caption=caption)
    table.add_column("true \\ pred")
    for j in shown:
        table.add_column(_short(classes[j], 12), justify="right")
    for i in shown:
        cells = []
        for j in shown:
            count = confusion[i][j]
            if i == j:
                cells.append(f"[bold green]{count}[/]")
            else:
                cells.append(f"[yellow]{count}[/]" if count else "[dim]0[/]")
        table.add_row(_short(classes[i], 20), *cells)
    return table


def write_per_class_csv(per_class: dict[str, dict[str, float]], path: Path) -> Path:
    """Write ``class,precision,recall,f1,support`` rows (one per class, in class order) to ``path``."""
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name, row in per_class.items():
            writer.writerow([name, f"{row['precision']:.6f}", f"{row['recall']:.6f}", f"{row['f1']:.6f}",
                             int(row["support"])])
    return path


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_confusion_matrix(confusion: list[list[int]], classes: list[str], path: Path, title: str = "") -> Path:
    """Draw the confusion matrix (rows = true, columns = predicted) as a PNG at ``path``: each cell annotated with
    its count, coloured by the fraction of its true class (row-normalised, 0–1), class names on both axes. Sized
    for 2–50 classes; with more, the :data:`TABLE_CLASS_LIMIT` most frequent classes are drawn and the title says
    so. Returns ``path``."""
    import numpy as np

    counts = np.asarray(confusion, dtype=np.int64)
    shown = list(range(len(classes)))
    if len(classes) > TABLE_CLASS_LIMIT:
        shown = most_frequent(counts.sum(axis=1).tolist(), TABLE_CLASS_LIMIT)
        title = f"{title}; {len(shown)} most frequent of {len(classes)} classes shown".lstrip("; ")
        counts = counts[np.ix_(shown, shown)]
    n = len(shown)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0)
    side = max(5.0, 0.42 * n + 3.0)
    font = 11 if n <= 10 else max(7.0, 11 - (n - 10) * 0.1)
    figure = _figure(side + 1.2, side)
    axes = figure.add_subplot()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("fraction of the true class")
    names = [_short(classes[i], 24) for i in shown]
    axes.set_xticks(range(n), names, rotation=45 if n <= 10 else 90, ha="right" if n <= 10 else "center",
                    fontsize=font)
    axes.set_yticks(range(n), names, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    for i in range(n):
        for j in range(n):
            if counts[i, j] or n <= 10:
                axes.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=font,
                          color="white" if fractions[i, j] > 0.5 else "black")
    axes.set_title(f"Confusion matrix ({title})" if title else "Confusion matrix")
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def _thumbnail(image: Path, size: int = 192) -> Any:
    import numpy as np
    from PIL import Image

    from oculi.data.image import decode_image

    pixels = decode_image(image, min_side=size).permute(1, 2, 0).numpy()
    picture = Image.fromarray(pixels)
    picture.thumbnail((size, size))
    return np.asarray(picture)


def plot_misclassified(misclassified: list[tuple[Path, str, str, float]], num_images: int, path: Path) -> Path:
    """Draw up to :data:`MISCLASSIFIED_GRID` misclassified images (in the given order) in a grid at ``path``, each
    titled ``true: X / pred: Y (p=0.87)``; with none, an image saying so. Returns ``path``."""
    shown = misclassified[:MISCLASSIFIED_GRID]
    if not shown:
        figure = _figure(6, 2)
        figure.text(0.5, 0.5, f"No misclassified images: all {num_images} predictions are correct.",
                    ha="center", va="center", fontsize=12)
        figure.savefig(path)
        return Path(path)
    columns = min(5, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure = _figure(3.0 * columns, 3.2 * rows + 0.6)
    for k, (image, true, predicted, prob) in enumerate(shown):
        axes = figure.add_subplot(rows, columns, k + 1)
        axes.imshow(_thumbnail(image))
        axes.set_title(f"true: {_short(true, 16)} / pred: {_short(predicted, 16)} (p={prob:.2f})", fontsize=8)
        axes.set_axis_off()
    figure.suptitle(f"Misclassified: {len(shown)} of {len(misclassified)} shown (of {num_images} images), "
                    "most confident first", fontsize=11)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)
