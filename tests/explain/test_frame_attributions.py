import copy

import pytest
import torch
from captum.attr import IntegratedGradients

from audioxai.errors import ConfigError
from audioxai.explain.frame_attributions import (FRAME_METHODS, attention_rollout, attention_rollout_frames,
                                                 frame_attributions, gradcam_frames, integrated_gradients_frames)
from audioxai.models.detector import DetectorConfig, SpoofDetector

TINY = DetectorConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, conv_channels=16,
                      conformer_dim=32, num_head_tokens=2, conformer_layers=2, conformer_heads=2,
                      conformer_ffn_dim=64, depthwise_kernel_size=7)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return SpoofDetector(TINY).eval()


@pytest.fixture(scope="module")
def waveform():
    return torch.randn(2, 8000, generator=torch.Generator().manual_seed(1)) * 0.1


def test_every_method_gives_a_non_negative_map_per_encoder_frame(detector, waveform):
    frames = detector.frame_count(waveform.shape[1])
    for method in FRAME_METHODS:
        kwargs = {"n_steps": 8} if method == "integrated_gradients" else {}
        maps = frame_attributions(detector, waveform, method, **kwargs)
        assert maps.shape == (2, frames) and maps.dtype == torch.float32, method
        assert (maps >= 0).all() and torch.isfinite(maps).all() and not maps.requires_grad, method
    with pytest.raises(ConfigError, match="unknown frame attribution method 'lime'"):
        frame_attributions(detector, waveform, "lime")
    with pytest.raises(ConfigError, match="classes 0 \\(bona fide\\) and 1 \\(spoof\\)"):
        gradcam_frames(detector, waveform, target=2)


def hand_gradcam(detector: SpoofDetector, x: torch.Tensor, target: int) -> torch.Tensor:
    """Grad-CAM written out: rerun the Conformer, take the last layer's input frames as the activation."""
    k = detector.config.num_head_tokens
    layers = detector.conformer.conformer_layers
    seq = torch.cat([detector.head_tokens.expand(len(x), -1, -1), detector.projection(detector.embeddings(x))], dim=1)
    seq = seq.transpose(0, 1)
    for layer in layers[:-1]:
        seq = layer(seq, None)
    acts = seq[k:].detach().transpose(0, 1).requires_grad_(True)
    out = layers[-1](torch.cat([seq[:k].detach(), acts.transpose(0, 1)]), None).transpose(0, 1)
    logit = detector.classifier(out[:, :k].flatten(1))[:, target].sum()
    (grads,) = torch.autograd.grad(logit, acts)
    weights = grads.mean(dim=1)  # (B, C): gradient averaged over frames
    return torch.relu(torch.einsum("bc,bfc->bf", weights, acts)).detach()


def test_gradcam_equals_the_hand_computation_for_both_classes(detector, waveform):
    for target in (0, 1):
        assert torch.allclose(gradcam_frames(detector, waveform, target), hand_gradcam(detector, waveform, target),
                              atol=1e-5)
    assert not torch.allclose(gradcam_frames(detector, waveform, 0), gradcam_frames(detector, waveform, 1))
    details = detector.forward_details(waveform.clone().requires_grad_(True))  # why not the last layer's outputs:
    assert torch.autograd.grad(details["logits"].sum(), details["conformer_frames"], allow_unused=True) == (None,)


def test_integrated_gradients_sums_each_frames_400_sample_window(detector, waveform):
    maps = integrated_gradients_frames(detector, waveform, n_steps=8, internal_batch_size=5)
    x = waveform.clone().requires_grad_(True)
    attr = IntegratedGradients(detector).attribute(x, baselines=torch.zeros_like(x), target=1, n_steps=8).abs()
    expected = torch.stack([attr[:, 320 * k: 320 * k + 400].sum(dim=1) for k in range(maps.shape[1])], dim=1)
    assert torch.allclose(maps, expected, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_of_a_centred_long_field_detector_sum_each_frames_centred_field(waveform):
    torch.manual_seed(0)
    detector = SpoofDetector(DetectorConfig(**{**TINY.__dict__, "first_conv_kernel": 634, "centre_frames": True})).eval()
    maps = integrated_gradients_frames(detector, waveform, n_steps=8, internal_batch_size=5)
    assert maps.shape == (2, 25)  # 8000 samples, 25 label frames of 320
    x = waveform.clone().requires_grad_(True)
    attr = IntegratedGradients(detector).attribute(x, baselines=torch.zeros_like(x), target=1, n_steps=8).abs()
    expected = torch.stack([attr[:, max(320 * k + 160 - 512, 0): 320 * k + 160 + 512].sum(dim=1) for k in range(25)],
                           dim=1)  # frame k: 1024 samples centred on label frame k's centre, cut at the clip's ends
    assert torch.allclose(maps, expected, rtol=1e-4, atol=1e-6)
    for method in FRAME_METHODS:
        kwargs = {"n_steps": 4} if method == "integrated_gradients" else {}
        assert frame_attributions(detector, waveform, method, **kwargs).shape == (2, 25), method


def test_rollout_rows_sum_to_one(detector, waveform):
    details = detector.forward_details(waveform, output_attentions=True)
    rollout = attention_rollout(details["encoder_attentions"], details["conformer_attentions"], 2)
    frames = detector.frame_count(waveform.shape[1])
    assert rollout.shape == (2, frames + 2, frames + 2)
    assert torch.allclose(rollout.sum(dim=-1), torch.ones(2, frames + 2), atol=1e-5)
    maps = attention_rollout_frames(detector, waveform)
    assert torch.allclose(maps, rollout[:, :2, 2:].mean(dim=1)) and (maps.sum(dim=1) <= 1 + 1e-5).all()


def test_rollout_of_uniform_attention_is_uniform(detector, waveform):
    uniform = copy.deepcopy(detector)
    with torch.no_grad():
        for layer in uniform.encoder.encoder.layers:  # zero queries: every score 0, softmax uniform
            layer.attention.q_proj.weight.zero_()
            layer.attention.q_proj.bias.zero_()
        for layer in uniform.conformer.conformer_layers:
            dim = layer.self_attn.embed_dim
            layer.self_attn.in_proj_weight[:dim].zero_()
            layer.self_attn.in_proj_bias[:dim].zero_()
    details = uniform.forward_details(waveform, output_attentions=True)
    for attention in details["encoder_attentions"] + details["conformer_attentions"]:
        assert torch.allclose(attention, torch.full_like(attention, 1 / attention.shape[-1]), atol=1e-6)
    maps = attention_rollout_frames(uniform, waveform)
    assert torch.allclose(maps, maps[:, :1].expand_as(maps), atol=1e-6)
    assert not torch.allclose(attention_rollout_frames(detector, waveform), maps, atol=1e-4)


def test_no_method_changes_the_detector_or_its_mode(waveform):
    torch.manual_seed(0)
    model = SpoofDetector(TINY).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in FRAME_METHODS:
        frame_attributions(model, waveform, method, **({"n_steps": 4} if method == "integrated_gradients" else {}))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_method_runs_on_cuda(detector, waveform):
    model, x = copy.deepcopy(detector).cuda(), waveform.cuda()
    for method in FRAME_METHODS:
        kwargs = {"n_steps": 8} if method == "integrated_gradients" else {}
        on_gpu = frame_attributions(model, x, method, **kwargs)
        assert on_gpu.device.type == "cuda"
        assert torch.allclose(on_gpu.cpu(), frame_attributions(detector, waveform, method, **kwargs),
                              rtol=1e-3, atol=1e-5), method
