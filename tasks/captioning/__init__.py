"""Image captioning on CLIP grid features (the CLIP-ViL paper's Table 2): a transformer captioner trained with
cross-entropy then self-critical sequence training, beam search, COCO-format results and the COCO caption
metrics (BLEU-4, METEOR, ROUGE-L, CIDEr-D, SPICE through pycocoevalcap).

Modules: ``data`` (Karpathy split files, COCO references and results), ``model`` (the captioner, sampling and
beam search), ``metrics`` (pycocoevalcap, CIDEr-D rewards), ``train`` and ``evaluate`` (the commands of
``python -m tasks.captioning train|eval``).
"""
