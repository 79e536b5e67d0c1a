"""Epoch-by-epoch trainers: validating between epochs does not change what is learned."""

from __future__ import annotations

import numpy as np
import torch

from medlim.curation.ood import train as training
from medlim.curation.ood.scoring import Detector

CONFIG = training.OodTrainingConfig(input_size=64, width=2, embedding=16, latent=16, ae_epochs=2, tend_epochs=2,
                                    warmup_epochs=1, cvad_epochs=2, disc_epochs=2, batch_size=4)
IMAGES = np.random.default_rng(3).random((8, 64, 64)).astype(np.float32)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_validating_between_epochs_gives_the_weights_of_a_plain_run() -> None:
    plain_ae = training.train_autoencoder(IMAGES, CONFIG)
    plain_tend = training.train_tend(IMAGES, plain_ae, CONFIG)
    plain_cvad = training.train_cvad(IMAGES, CONFIG)

    stage1 = training.AutoencoderTrainer(IMAGES, CONFIG)
    stage2_lines = []
    for _ in range(CONFIG.ae_epochs):
        stage1.train_epoch()
        Detector("ae", stage1.model, {"input_size": 64}, threshold=0.0).score(IMAGES[:3])  # eval mode, no grad
    assert _same(stage1.model, plain_ae)
    stage2 = training.TendTrainer(IMAGES, stage1.model, CONFIG)
    for _ in range(CONFIG.tend_epochs):
        stage2_lines.append(stage2.train_epoch())
        Detector("tend", stage2.model, {"input_size": 64, "weight": 0.5, "margin": 150.0}, threshold=0.0).score(IMAGES)
    assert _same(stage2.model, plain_tend) and stage2_lines[-1].startswith("tend epoch 2/2: bce")

    cvad = training.CvadTrainer(IMAGES, CONFIG)
    params = {"input_size": 64, "rec_min": 0.0, "rec_max": 1.0}
    for step in [cvad.generator_epoch] * 2 + [cvad.discriminator_epoch] * 2:
        step()
        Detector("cvad", cvad.model, params, threshold=0.0).score(IMAGES)
    assert _same(cvad.model, plain_cvad)
