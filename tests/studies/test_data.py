import torch

from audioxai.data.audiomnist import AudioMNIST
from audioxai.data.images import load_digits_images
from audioxai.data.synthdigits import synth_digits
from audioxai.studies.data import audio_data, image_data


def test_images_are_resized_with_ink_masks():
    images = load_digits_images()
    data = image_data(images, "test", 28)
    assert data.inputs.shape[1:] == (1, 28, 28) and 0 <= float(data.inputs.min()) and float(data.inputs.max()) <= 1
    share = data.truth.float().mean()
    assert 0.1 < share < 0.6 and data.kind == "image"


def test_spectrograms_have_as_many_frames_as_bands_and_a_time_truth(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOXAI_CACHE", str(tmp_path))
    root = synth_digits(num_speakers=3, repetitions=1, seed=5, progress=False)
    dataset = AudioMNIST(root, split="test", sample_rate=8000)
    for resolution in (32, 64):
        data = audio_data(dataset, resolution)
        assert data.inputs.shape == (len(dataset), 1, resolution, resolution)
        # the truth is a time span: the same for every mel band, and where the energy is
        assert torch.equal(data.truth[:, :, :1].expand_as(data.truth), data.truth)
        energy = (data.inputs - data.inputs.amin(dim=(2, 3), keepdim=True)).mean(dim=2).squeeze(1)
        inside = (energy * data.truth[:, 0, 0]).sum(1) / energy.sum(1)
        assert float(inside.mean()) > float(data.truth[:, 0, 0].float().mean())
