"""GPU choice (NVML data in, CUDA ordinal out) and the encoder decision, without a GPU."""

from __future__ import annotations

from geminivideo.video.render import gpu
from geminivideo.video.render.gpu import GpuInfo, GpuPick

GPUS = [GpuInfo(0, "GPU-aaaa", "A", 4 << 30), GpuInfo(1, "GPU-bbbb", "B", 20 << 30), GpuInfo(2, "GPU-cccc", "C",
                                                                                             20 << 30)]


def test_most_free_memory_wins_ties_to_the_lowest_index() -> None:
    assert gpu.pick_gpu(GPUS, None) == GpuPick(index=1, cuda_ordinal=1)


def test_cuda_visible_devices_reorders_and_filters() -> None:
    assert gpu.pick_gpu(GPUS, "2,0") == GpuPick(index=2, cuda_ordinal=0)
    assert gpu.pick_gpu(GPUS, "GPU-aaaa") == GpuPick(index=0, cuda_ordinal=0)
    assert gpu.pick_gpu(GPUS, "0,7,1") == GpuPick(index=0, cuda_ordinal=0)  # CUDA stops at the invalid 7
    assert gpu.pick_gpu(GPUS, "") is None
    assert gpu.pick_gpu([], None) is None


def test_encoder_complaint_prefers_the_encoder_line() -> None:
    report = ("render failed (exit code 1):\n[h264_nvenc @ 0x5] Cannot load libcuda.so.1\n"
              "Error initializing output stream 0:0 -- maybe incorrect parameters")
    assert gpu.encoder_complaint(report) == "Cannot load libcuda.so.1"
    assert gpu.encoder_complaint("one line") == "one line"


def test_decisions() -> None:
    assert gpu.choose_encoder("h264", "libx264", use_gpu=False) == gpu.EncoderDecision("libx264")
    nvenc = gpu.EncoderDecision("hevc_nvenc", GpuPick(3, 1))
    assert nvenc.used_gpu and nvenc.env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert not gpu.EncoderDecision("libx264").used_gpu and gpu.EncoderDecision("libx264").env is None
