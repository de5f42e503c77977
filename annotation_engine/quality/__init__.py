"""Engine quality: score any engine config against a labeled split (``unilseg eval-engine``).

The engine runs over the split's images through the annotate pipeline
(``annotation_engine.driver.annotate_images``; nothing is written into the split), and its
proposals are matched to the split's ground-truth targets:

    coco.py         ground truth and proposals as COCO instances / COCO results (pure)
    recall.py       class-agnostic recall with pycocotools' COCOeval, by granularity and size;
                    each proposal's best IoU against ground truth; precision
    judges.py       how well each engine score predicts a proposal's IoU (Spearman, deciles)
    expressions.py  whether generated expressions single out their masks (grounding model
                    read-back, or MiniLM similarity to the ground-truth expressions)
    pictures.py     recall against IoU threshold, score against IoU, best/worst sheet (PIL)
    report.py       report.md and metrics.json
    config.py       EngineEvalConfig: the settings the command line derives its options from
    run.py          evaluate_engine: export images, annotate, read back, score, report
"""
