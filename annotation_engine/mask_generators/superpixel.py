"""A weight-free region proposer: SLIC superpixels merged into object-sized regions.

SLIC (scikit-image) over-segments the image into compact superpixels; neighbouring
superpixels are then merged hierarchically by their mean colour in CIELAB (skimage's
region adjacency graph), so each threshold in ``levels`` yields a partition into regions
of similar colour. Regions of a fine level that sit inside a coarse one become part
targets downstream; identical ones are removed by mask NMS.
"""

from __future__ import annotations

import heapq

import numpy as np
import skimage
from skimage import color, filters, segmentation

from annotation_engine.mask_generators import Proposal
from annotation_engine.registry import MASK_GENERATORS
from common.errors import UniLSegError


def _boundary_strength(labels: np.ndarray, edges: np.ndarray) -> dict[tuple[int, int], list[float]]:
    """(a, b) -> [sum, count] of the edge map along the boundary of neighbouring labels a < b."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    e = np.concatenate(
        [np.maximum(edges[:, :-1], edges[:, 1:]).ravel(), np.maximum(edges[:-1, :], edges[1:, :]).ravel()]
    )
    keep = a != b
    lo, hi, e = np.minimum(a, b)[keep], np.maximum(a, b)[keep], e[keep]
    pairs, inverse = np.unique(np.stack([lo, hi], 1), axis=0, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=e)
    counts = np.bincount(inverse.ravel())
    return {(int(p[0]), int(p[1])): [float(s), float(c)] for p, s, c in zip(pairs, sums, counts)}


def merge_regions(
    labels: np.ndarray,
    lab: np.ndarray,
    thresholds: list[float],
    small_region: float,
    edges: np.ndarray | None = None,
    edge_weight: float = 0.0,
) -> list[np.ndarray]:
    """Greedy hierarchical merging of adjacent regions by mean Lab colour and boundary strength.

    The pair with the smallest weight merges first. The weight is the Lab distance of the two
    means plus ``edge_weight`` times the mean edge strength along their shared boundary (so a
    face does not merge into a wall of the same colour across a visible contour), scaled
    down when the smaller region is under ``small_region`` of the image, so slivers join a
    neighbour before two large regions do.

    Args:
        labels (np.ndarray): (H, W) int labels 0..N-1 (superpixels).
        lab (np.ndarray): (H, W, 3) float CIELAB image.
        thresholds (list[float]): increasing weights at which to take a snapshot.
        small_region (float): fraction of the image below which a region counts as small.
        edges (np.ndarray | None): (H, W) edge strength in [0, 1] (e.g. Sobel of lightness).
        edge_weight (float): Lab units added per unit of mean boundary edge strength.

    Returns:
        list[np.ndarray]: one (H, W) label image per threshold.
    """
    graph = _RegionGraph(labels, lab, small_region, edges, edge_weight)
    heap = [(graph.weight(a, b), a, b, 0, 0) for (a, b) in graph.boundary]
    heapq.heapify(heap)
    out = []
    for thresh in thresholds:
        while heap and heap[0][0] < thresh:
            _, a, b, va, vb = heapq.heappop(heap)
            if graph.parent[a] != a or graph.parent[b] != b or graph.version[a] != va or graph.version[b] != vb:
                continue  # stale entry: one side merged or changed since
            graph.merge(a, b)
            for c in graph.neighbours[a]:
                lo, hi = (a, c) if a < c else (c, a)
                heapq.heappush(heap, (graph.weight(lo, hi), lo, hi, graph.version[lo], graph.version[hi]))
        out.append(graph.roots()[labels])
    return out


class _RegionGraph:
    """Regions of a label image as a graph for ``merge_regions``: per region its pixel count,
    Lab sums, neighbours and union-find parent; per adjacent pair (a < b) the summed edge
    strength and length of their shared boundary."""

    def __init__(
        self, labels: np.ndarray, lab: np.ndarray, small_region: float, edges: np.ndarray | None, edge_weight: float
    ):
        n = int(labels.max()) + 1
        flat = labels.ravel()
        self.n = n
        self.counts = np.bincount(flat, minlength=n).astype(np.float64)
        self.sums = np.stack([np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(3)], 1)
        self.boundary = _boundary_strength(labels, edges if edges is not None else np.zeros(labels.shape))
        self.neighbours: list[set[int]] = [set() for _ in range(n)]
        for a, b in self.boundary:
            self.neighbours[a].add(b)
            self.neighbours[b].add(a)
        self.parent = list(range(n))
        self.version = [0] * n  # bumped when a region grows: older heap entries are stale
        self.total, self.small, self.edge_weight = float(labels.size), small_region, edge_weight

    def weight(self, a: int, b: int) -> float:
        """Lab distance of the means plus the boundary's edge term, scaled down for small regions."""
        counts, sums = self.counts, self.sums
        diff = float(np.linalg.norm(sums[a] / counts[a] - sums[b] / counts[b]))
        s, c = self.boundary[(a, b)]
        diff += self.edge_weight * s / max(c, 1.0)
        return diff * min(1.0, (min(counts[a], counts[b]) / self.total / self.small) ** 0.5)

    def merge(self, a: int, b: int) -> None:
        """Region b joins region a: counts, sums, boundaries and neighbours move to a."""
        boundary, neighbours = self.boundary, self.neighbours
        self.parent[b] = a
        self.counts[a] += self.counts[b]
        self.sums[a] += self.sums[b]
        self.version[a] += 1
        for c in neighbours[b]:
            if c == a:
                continue
            old = boundary.pop((min(b, c), max(b, c)))
            key = (min(a, c), max(a, c))
            acc = boundary.setdefault(key, [0.0, 0.0])
            acc[0] += old[0]
            acc[1] += old[1]
            neighbours[c].discard(b)
            neighbours[c].add(a)
            neighbours[a].add(c)
        boundary.pop((min(a, b), max(a, b)), None)
        neighbours[a].discard(b)
        neighbours[b] = set()

    def roots(self) -> np.ndarray:
        """(N,) the region each original label belongs to now."""
        root = np.arange(self.n)
        for i in range(self.n):
            r = i
            while self.parent[r] != r:
                r = self.parent[r]
            root[i] = r
        return root


@MASK_GENERATORS.register("superpixel")
class SuperpixelGenerator:
    """SLIC + hierarchical colour merging, at one or more merge thresholds.

    Args:
        n_segments (int): approximate SLIC superpixel count.
        compactness (float): SLIC colour/space trade-off (higher = more square superpixels).
        levels (list[float]): merge thresholds in Lab units; each gives one partition.
        small_region (float): regions below this fraction of the image merge more eagerly.
        seed_sigma (float): Gaussian smoothing before SLIC, in pixels.
        edge_weight (float): Lab units added to a merge per unit of mean boundary edge strength
            (0 = colour only).
    """

    version = f"skimage-{skimage.__version__}"

    def __init__(
        self,
        n_segments: int = 300,
        compactness: float = 10.0,
        levels: tuple[float, ...] = (14.0, 30.0),
        small_region: float = 0.01,
        seed_sigma: float = 1.0,
        edge_weight: float = 20.0,
    ):
        if not levels:
            raise UniLSegError("levels must name at least one merge threshold")
        self.n_segments, self.compactness = int(n_segments), float(compactness)
        self.levels = sorted(float(t) for t in levels)
        self.small_region, self.seed_sigma = float(small_region), float(seed_sigma)
        self.edge_weight = float(edge_weight)

    def identity(self) -> dict[str, str]:
        return {"generator": "superpixel", "generator_version": self.version}

    def partitions(self, rgb: np.ndarray) -> list[np.ndarray]:
        """(H, W, 3) uint8 -> one (H, W) int label image per level, finest first."""
        lab = color.rgb2lab(rgb)
        labels = segmentation.slic(
            lab,
            n_segments=self.n_segments,
            compactness=self.compactness,
            sigma=self.seed_sigma,
            start_label=0,
            convert2lab=False,
            channel_axis=-1,
        )
        edges = filters.sobel(lab[..., 0] / 100.0)
        edges = np.clip(edges / (np.percentile(edges, 99) + 1e-6), 0.0, 1.0)
        return merge_regions(labels, lab, self.levels, self.small_region, edges, self.edge_weight)

    def generate(self, rgb: np.ndarray) -> list[Proposal]:
        """(H, W, 3) uint8 RGB -> proposals with colour-contrast and solidity scores."""
        lab = color.rgb2lab(rgb)
        proposals = []
        for level, labels in enumerate(self.partitions(rgb)):
            ids, inverse = np.unique(labels, return_inverse=True)
            inverse = inverse.reshape(labels.shape)
            means = np.stack([np.bincount(inverse.ravel(), weights=lab[..., c].ravel()) for c in range(3)], 1)
            counts = np.bincount(inverse.ravel()).astype(np.float64)
            means /= counts[:, None]
            for i in range(len(ids)):
                mask = inverse == i
                ring = _dilate(mask) & ~mask
                contrast = float(np.linalg.norm(lab[ring].mean(0) - means[i])) if ring.any() else 0.0
                proposals.append(
                    Proposal(mask, {"contrast": round(min(contrast / 100.0, 1.0), 4), "level": float(level)})
                )
        return proposals


def _dilate(mask: np.ndarray, r: int = 2) -> np.ndarray:
    """Binary dilation by a (2r+1) square, with shifts (no scipy call per region)."""
    out = mask.copy()
    for _ in range(r):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out
