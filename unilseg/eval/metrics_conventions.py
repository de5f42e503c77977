"""What each reported metric means, in one sentence each, for a report to print next to
the number (`METRIC_CONVENTIONS`; a test keeps it covering every metric we report)."""

from __future__ import annotations

from unilseg.eval.metrics_referring import PREC_THRESHOLDS

METRIC_CONVENTIONS: dict[str, str] = {
    "binarisation": "A float prediction is foreground where pred > threshold (0.5 unless "
    "stated), at the ground truth's original resolution; nothing is resized.",
    "oIoU": "Overall IoU: sum over samples of intersections divided by sum of unions (1.0 if every union is empty).",
    "mIoU": "Mean over samples of per-sample IoU, where an empty prediction on an empty "
    "ground truth (union 0) counts IoU = 1.",
    **{
        f"prec@{t}": f"Fraction of samples whose IoU >= {t} (>=, as LAVT/ReLA; CRIS uses >), at original resolution."
        for t in PREC_THRESHOLDS
    },
    "gIoU": "GRES (ReLA): mean per-sample IoU; a no-target sample scores 1 if the predicted "
    "mask is empty and 0 otherwise.",
    "cIoU": "GRES (ReLA): cumulative intersection over cumulative union over all samples, "
    "no-target ones included (1.0 if every union is empty).",
    "N-acc": "GRES: among no-target samples, the fraction whose predicted mask has zero "
    "foreground pixels (ReLA decides emptiness with its no-target head instead).",
    "T-acc": "GRES: among target samples, the fraction whose predicted mask is non-empty.",
    "MAE": "Mean over images of the mean absolute difference between the saliency map "
    "(min-max normalised per image unless normalize=False) and the binary ground truth.",
    "maxF": "Maximum over 256 thresholds of the mean-over-images F-measure with beta^2 = 0.3, "
    "map quantised to 8 bits as pysodmetrics' Fmeasure does.",
    "S-measure": "Structure measure (Fan et al. 2017) with alpha = 0.5, averaged over images, "
    "computed by pysodmetrics.",
    "mIoU_part": "RefCOCOm (MRES): mean per-sample IoU over part-level expressions only.",
    "mIoU_object_part": "RefCOCOm (MRES): mean per-sample IoU over object- and part-level expressions together.",
    "mIoU (semantic)": "Per class, intersections and unions summed over the 'all <class>' "
    "samples; mean of I_c / U_c over classes with U_c > 0.",
}
