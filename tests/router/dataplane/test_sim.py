"""The simulated model servers and their latency/power model."""

from __future__ import annotations

import aiohttp
import pytest

from fleetroute_router.sim.model import ServerModel, gpu_spec, model_billions
from fleetroute_router.sim.server import SimServer


def test_the_model_scales_with_gpu_model_size_and_batch() -> None:
    big_h100 = ServerModel.of("Llama-3.1-70B", "NVIDIA-H100-80GB-HBM3", gpus=4)
    small_l4 = ServerModel.of("Llama-3.1-8B", "NVIDIA-L4")
    assert model_billions("meta-llama/Llama-3.1-70B-Instruct") == 70.0
    assert gpu_spec("NVIDIA-A10G").mem_tbps == 0.6
    assert big_h100.decode_step_s(1) < small_l4.decode_step_s(1)
    assert small_l4.decode_step_s(16) > small_l4.decode_step_s(1)
    assert big_h100.prefill_s(2000) == pytest.approx(2 * big_h100.prefill_s(1000))
    assert small_l4.power_watts(0) == 16.0
    assert small_l4.power_watts(32) == 72.0
    assert ServerModel.of("x-8B", "L4", speed=0).prefill_s(1000) == 0.0


async def test_a_sim_server_answers_and_exposes_vllm_metrics() -> None:
    server = SimServer("m-8B", ServerModel.of("m-8B", "L4", speed=0.01))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://{server.address}"
            body = {"model": "m-8B", "prompt": "hi", "max_tokens": 3}
            async with session.post(url + "/v1/completions", json=body) as response:
                document = await response.json()
            assert document["usage"]["completion_tokens"] == 3
            async with session.post(url + "/v1/completions", json={**body, "model": "x"}) as r:
                assert r.status == 404
            async with session.get(url + "/metrics") as response:
                text = await response.text()
        for name in (
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "DCGM_FI_DEV_POWER_USAGE",
        ):
            assert name in text
    finally:
        await server.stop()
