"""VQA on CLIP grid features (the CLIP-ViL paper's Table 1) and CLIP's zero-shot VQA probe (its Table 7).

Modules: ``accuracy`` (the official VQA accuracy and answer normalisation), ``data`` (VQA v2 and GQA loaders,
the answer label space, soft-score targets), ``models`` (Pythia-style and MCAN-style heads), ``train``,
``evaluate`` and ``zeroshot`` (the commands of ``python -m tasks.vqa train|eval|zeroshot``).
"""
