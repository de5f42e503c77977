"""People in the loop: the least certain targets of a split go to Label Studio, and what people
verified, corrected or rejected comes back as a reviewed version of the split.

    select.py    which targets to review (the N lowest by a score, those below a threshold, a
                 random sample of the rest)
    labeling.py  the label config and the brush masks of Label Studio (RLE, alpha >= 128)
    studio.py    the Label Studio project through label-studio-sdk: find or create, images,
                 tasks, finished reviews
    export.py    split -> tasks in a project (images served from a media folder beside the
                 split, never a copy of the split)
    decisions.py finished reviews -> one decision per target (accept, correct, reject)
    reviewed.py  split + decisions -> the reviewed split, written atomically
    server.py    a local Label Studio server (its own venv), for the stack and the tests

Nothing here imports Prefect or click; the command line is cli/review_cmd.py and the flow
stage flows/review.py.
"""
