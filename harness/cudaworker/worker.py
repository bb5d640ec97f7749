#!/usr/bin/env python3
"""Stand-in CUDA inference worker for rbee's GPU acceptance check.

Holds --vram-gib of GPU memory and, with --busy, runs bf16 matrix products
without pause. With --child the CUDA context lives in a child process, as
in vLLM, so the hive must attribute the child's GPU use to the worker.
"""
import argparse
import multiprocessing as mp
import signal
import sys
import time

stop = False


def on_term(*_):
    global stop
    stop = True


def work(vram_gib, busy):
    import torch

    signal.signal(signal.SIGTERM, on_term)
    dev = torch.device("cuda")
    hold = torch.empty(int(vram_gib * (1 << 30)), dtype=torch.uint8, device=dev)
    hold.fill_(1)
    a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
    b = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
    torch.cuda.synchronize()
    print(f"worker ready: {vram_gib} GiB held, busy={busy}", flush=True)
    while not stop:
        if busy:
            for _ in range(20):
                a @ b
            torch.cuda.synchronize()
        else:
            time.sleep(0.1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--port", default="0")
    p.add_argument("--vram-gib", type=float, default=1.0)
    p.add_argument("--busy", action="store_true")
    p.add_argument("--child", action="store_true")
    args = p.parse_args()
    if not args.child:
        work(args.vram_gib, args.busy)
        return
    signal.signal(signal.SIGTERM, on_term)
    child = mp.get_context("spawn").Process(target=work, args=(args.vram_gib, args.busy))
    child.start()
    while not stop and child.is_alive():
        time.sleep(0.1)
    child.terminate()
    child.join(10)
    sys.exit(0)


if __name__ == "__main__":
    main()
