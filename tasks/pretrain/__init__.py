"""V&L pretraining on the CLIP backbone (CLIP-ViL_p): a single-stream transformer over word pieces and CLIP
grid features, pretrained with masked language modelling, image-text matching and question answering
(:mod:`tasks.pretrain.pretrain`), fine-tuned on VQA, SNLI-VE and GQA (:mod:`tasks.pretrain.finetune`).

It sits in the top layer, above :mod:`tasks.vqa` and :mod:`tasks.captioning`, whose loaders, answer space,
accuracy and end-to-end wrapper it reuses; torchrun support comes from :mod:`agents.distributed`.
"""
