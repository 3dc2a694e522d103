"""Tests for alad_kit.core.device: the device check shared by `alad run` and `alad bench`."""

import pytest
import torch

from alad_kit.core import device


@pytest.fixture
def cpu_only_torch(monkeypatch):
    """This torch as a CPU-only build (also on a GPU machine)."""
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_default_is_cuda_when_present_else_cpu(cpu_only_torch, monkeypatch):
    assert device.resolve_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.resolve_device(None) == "cuda"


def test_cpu_is_always_there():
    assert device.resolve_device("cpu") == "cpu"


def test_cuda_on_a_cpu_only_build_is_one_clear_line(cpu_only_torch):
    with pytest.raises(device.DeviceUnavailableError) as caught:
        device.resolve_device("cuda")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--device cuda: this torch ")
    assert "CPU-only build" in message and "--device cpu" in message


def test_cuda_build_without_a_gpu_and_out_of_range_index(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(device.DeviceUnavailableError, match="sees no GPU"):
        device.resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert device.resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(device.DeviceUnavailableError, match=r"1 CUDA device\(s\), numbered 0..0"):
        device.resolve_device("cuda:1")


def test_unknown_device_string_is_a_value_error():
    with pytest.raises(ValueError, match="'gpu' is not a torch device"):
        device.resolve_device("gpu")
