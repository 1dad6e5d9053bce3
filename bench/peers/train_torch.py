#!/usr/bin/python3
"""PyTorch peer of ringtrain-worker: the same models, batch, threads, optimizer
and data, printing the same lines (step table, `total images/sec`,
`Accuracy @ 1`), so both can run side by side.

Uses Debian's python3-torch / python3-torchvision. One process trains alone;
under mpirun (--ddp) every rank joins a DistributedDataParallel (gloo) job,
the peer of ringtrain's multi-rank runs.

  python3 bench/peers/train_torch.py --model=lenet --batch_size=64 --num_intra_threads=1
  mpirun -np 2 python3 bench/peers/train_torch.py --ddp --model=lenet ...
  python3 bench/peers/train_torch.py --device cuda --model=resnet50   # one GPU

--device cuda trains on the GPU with cuDNN autotuning on and waits for the
GPU at the end of every step, so step times are real; under --ddp each rank
takes the GPU of its local rank and joins an NCCL job. Precision, as a
PyTorch user would choose it:

  (default)                  strict fp32: TF32 off for matmuls and cuDNN
  --tf32                     fp32 with TF32 tensor cores for both
  --amp [--channels_last]    mixed precision: autocast to fp16 and a
                             GradScaler (PyTorch AMP's defaults); bf16 with
                             --amp_dtype bfloat16 (no scaler needed)

The header's Precision line says what is in effect (read back from torch);
the last lines give the peak GPU memory of rank 0, allocated and reserved by
PyTorch's caching allocator. Arguments are checked before torch is imported
(exit 2), so a wrong command fails at once.
"""
import argparse
import contextlib
import gzip
import math
import os
import resource
import statistics
import struct
import sys
import time

# Imported by load_torch() once the arguments are known to be good.
torch = nn = F = None


def load_torch():
    global torch, nn, F
    import torch as _torch
    import torch.nn as _nn
    import torch.nn.functional as _F
    torch, nn, F = _torch, _nn, _F


def mlp(classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(),
                         nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, classes))


def lenet(classes):
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 512), nn.ReLU(), nn.Linear(512, classes))


def trivial(classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(227 * 227 * 3, 1), nn.ReLU(),
                         nn.Linear(1, 4096), nn.ReLU(), nn.Linear(4096, classes))


def resnet20(classes):
    class BasicBlock(nn.Module):
        """CIFAR ResNet block with a 1x1 conv + BN projection when the shape changes."""

        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                              nn.BatchNorm2d(cout))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))

    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            layers.append(BasicBlock(cin, width, 2 if stage > 0 and block == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


def resnet50(classes):
    import torchvision
    return torchvision.models.resnet50(num_classes=classes)


def resnet101(classes):
    import torchvision
    return torchvision.models.resnet101(num_classes=classes)


MODELS = {  # name: (builder, input shape, classes)
    "trivial": (trivial, (3, 227, 227), 1000),
    "mlp": (mlp, (1, 28, 28), 10),
    "lenet": (lenet, (1, 28, 28), 10),
    "resnet20": (resnet20, (3, 32, 32), 10),
    "resnet50": (resnet50, (3, 224, 224), 1000),
    "resnet101": (resnet101, (3, 224, 224), 1000),
}


def read_idx(path, magic):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if struct.unpack(">I", data[:4])[0] != magic:
        sys.exit(f"train_torch.py: error: {path}: bad IDX magic")
    if magic == 0x803:
        n, h, w = struct.unpack(">III", data[4:16])
        return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).view(n, 1, h, w)
    n = struct.unpack(">I", data[4:8])[0]
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()


def find(d, name):
    p = os.path.join(d, name)
    return p if os.path.exists(p) else p + ".gz"


def fashion_mnist(d, split):
    images = read_idx(find(d, f"{split}-images-idx3-ubyte"), 0x803)
    labels = read_idx(find(d, f"{split}-labels-idx1-ubyte"), 0x801)
    return (images.float() / 255.0 - 0.2860) / 0.3530, labels


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet", choices=sorted(MODELS))
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--num_batches", type=int, default=100)
    p.add_argument("--num_epochs", type=float, default=0)
    p.add_argument("--num_warmup_batches", type=int, default=10)
    p.add_argument("--display_every", type=int, default=10)
    p.add_argument("--num_intra_threads", type=int, default=1)
    p.add_argument("--data_name", default="synthetic", choices=["synthetic", "fashion_mnist"])
    p.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--learning_rate", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=0.00004)
    p.add_argument("--eval", action="store_true")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--ddp", action="store_true", help="join a gloo DDP job (run under mpirun)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--tf32", action="store_true",
                   help="cuda: TF32 tensor cores for fp32 matmuls and convolutions "
                        "(default: off, strict fp32)")
    p.add_argument("--amp", action="store_true",
                   help="cuda: automatic mixed precision (autocast, GradScaler for fp16)")
    p.add_argument("--amp_dtype", choices=["float16", "bfloat16"],
                   help="the type --amp computes in (default float16)")
    p.add_argument("--channels_last", action="store_true",
                   help="model and inputs in channels-last (NHWC) memory format")
    a = p.parse_args(argv)
    for name in ("batch_size", "num_batches", "display_every", "num_intra_threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name}={getattr(a, name)}: must be at least 1")
    if a.num_warmup_batches < 0 or a.num_epochs < 0:
        p.error("--num_warmup_batches and --num_epochs must not be negative")
    if a.device != "cuda":
        for flag in ("tf32", "amp"):
            if getattr(a, flag):
                p.error(f"--{flag} needs --device cuda (it selects the GPU's tensor-core "
                        "precision); drop it or add --device cuda")
    if a.amp_dtype and not a.amp:
        p.error(f"--amp_dtype={a.amp_dtype} needs --amp")
    a.amp_dtype = a.amp_dtype or "float16"
    return a


def set_tf32(on):
    """TF32 for fp32 matmuls and cuDNN convolutions on or off; returns what
    torch reports back. PyTorch 2.9 and later have per-backend
    fp32_precision settings and warn about the older allow_tf32 flags; only
    one of the two interfaces is used."""
    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):
        mode = "tf32" if on else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        cudnn_conv.fp32_precision = mode
        return (f"matmul fp32_precision={torch.backends.cuda.matmul.fp32_precision}, "
                f"cuDNN conv fp32_precision={cudnn_conv.fp32_precision}")
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    return (f"matmul allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
            f"cuDNN allow_tf32={torch.backends.cudnn.allow_tf32}")


def grad_scaler():
    """PyTorch AMP's loss scaler with its defaults (torch.amp in 2.3 and
    later, torch.cuda.amp before)."""
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def precision_line(a, tf32_state, scaler):
    """The header's Precision line: what this run computes in."""
    fmt = "channels_last" if a.channels_last else "NCHW"
    if a.device != "cuda":
        return f"fp32 (CPU); {fmt}"
    if a.amp:
        scaling = (f"GradScaler, initial scale {scaler.get_scale():g}" if scaler
                   else "no loss scaling")
        return (f"{a.amp_dtype} autocast ({scaling}); fp32 ops {'TF32' if a.tf32 else 'strict'} "
                f"({tf32_state}); {fmt}")
    return f"{'fp32 with TF32' if a.tf32 else 'strict fp32'} ({tf32_state}); {fmt}"


def setup_device(a):
    """The device, TF32 mode and cuDNN autotuning; rank and size under DDP."""
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"train_torch.py: error: --device cuda: PyTorch {torch.__version__} sees no "
                 f"CUDA device (built for CUDA {torch.version.cuda}); run on a GPU node or "
                 "use --device cpu")
    dev = torch.device(a.device)
    tf32_state = ""
    if a.device == "cuda":
        tf32_state = set_tf32(a.tf32)
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(a.num_intra_threads)
    torch.manual_seed(a.seed)
    rank, size = 0, 1
    if a.ddp:
        import torch.distributed as dist
        rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("RANK", 0)))
        size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29511")
        if a.device == "cuda":
            local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(local)
            dev = torch.device("cuda", local)
        dist.init_process_group("nccl" if a.device == "cuda" else "gloo", rank=rank, world_size=size)
    return dev, tf32_state, rank, size


def print_header(a, dev, nparams, global_batch, timed, size, precision):
    print(f"Model:       {a.model} (PyTorch {torch.__version__})")
    print(f"Dataset:     {a.data_name}")
    print(f"Batch size:  {global_batch} global\n             {a.batch_size} per rank")
    print(f"Num batches: {timed}")
    print(f"Ranks:       {size}")
    print(f"Threads:     {a.num_intra_threads} per rank")
    if a.device == "cuda":
        print(f"Device:      {torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda}, "
              f"cuDNN {torch.backends.cudnn.version()}, cudnn.benchmark on)")
    print(f"Precision:   {precision}")
    print(f"Parameters:  {nparams:,}")
    print("==========\nRunning warm up", flush=True)


def print_peaks(a, dev):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak RSS (rank 0): {rss:.0f} MiB", flush=True)
    if a.device == "cuda":
        print(f"peak GPU memory (rank 0): {torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MiB "
              f"allocated, {torch.cuda.max_memory_reserved(dev) / 2**20:.0f} MiB reserved",
              flush=True)


def main():
    a = parse_args(sys.argv[1:])
    load_torch()
    cuda = a.device == "cuda"
    dev, tf32_state, rank, size = setup_device(a)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    amp_dtype = getattr(torch, a.amp_dtype)
    # fp16 needs its gradients scaled; bf16 has fp32's range.
    scaler = grad_scaler() if a.amp and amp_dtype == torch.float16 else None
    autocast = ((lambda: torch.autocast(device_type="cuda", dtype=amp_dtype)) if a.amp
                else contextlib.nullcontext)

    build, shape, classes = MODELS[a.model]
    model = build(classes)
    nparams = sum(t.numel() for t in model.parameters())
    model = model.to(dev, memory_format=fmt)
    if a.ddp:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if cuda else None)
    opt = torch.optim.SGD(model.parameters(), lr=a.learning_rate, momentum=a.momentum,
                          weight_decay=a.weight_decay)

    if a.data_name == "fashion_mnist":
        train_x, train_y = fashion_mnist(a.data_dir, "train")
    else:
        g = torch.Generator().manual_seed(a.seed + rank)
        train_x = torch.randn((a.batch_size,) + shape, generator=g)
        train_y = torch.randint(0, classes, (a.batch_size,), generator=g)
        if cuda:
            train_x, train_y = train_x.to(dev), train_y.to(dev)
        train_x = train_x.contiguous(memory_format=fmt)
    global_batch = a.batch_size * size
    steps_per_epoch = max(1, len(train_x) // global_batch)
    warmup, timed = a.num_warmup_batches, a.num_batches
    if a.num_epochs > 0:
        total = max(1, math.ceil(a.num_epochs * steps_per_epoch))
        warmup = min(warmup, total - 1)
        timed = total - warmup

    if rank == 0:
        print_header(a, dev, nparams, global_batch, timed, size,
                     precision_line(a, tf32_state, scaler))

    perm, epoch = None, -1
    times = []
    model.train()
    t_start = time.perf_counter()
    for step in range(warmup + timed):
        if step == warmup:
            if rank == 0:
                print("Done warm up\nStep\tImg/sec\ttotal_loss", flush=True)
            t_start = time.perf_counter()
        t0 = time.perf_counter()
        if a.data_name == "fashion_mnist":
            e = step // steps_per_epoch
            if e != epoch:
                perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(a.seed + e))
                epoch = e
            first = (step % steps_per_epoch) * global_batch + rank * a.batch_size
            idx = perm[first:first + a.batch_size]
            x, y = train_x[idx], train_y[idx]
            if cuda:
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            x = x.contiguous(memory_format=fmt)
        else:
            x, y = train_x, train_y
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        if cuda:
            torch.cuda.synchronize(dev)
        dt = time.perf_counter() - t0
        if step < warmup:
            continue
        times.append(dt)
        k = len(times)
        if rank == 0 and (k == 1 or k % a.display_every == 0 or k == timed):
            speeds = [global_batch / t for t in times]
            mean = global_batch / statistics.fmean(times)
            unc = statistics.pstdev(speeds) / math.sqrt(len(speeds))
            med = statistics.median(speeds)
            jitter = 1.4826 * statistics.median([abs(s - med) for s in speeds])
            print(f"{k}\timages/sec: {mean:.1f} +/- {unc:.1f} (jitter = {jitter:.1f})\t{loss.item():.3f}",
                  flush=True)
    elapsed = time.perf_counter() - t_start
    if a.ddp:
        import torch.distributed as dist
        t = torch.tensor([elapsed], dtype=torch.float64, device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        elapsed = t.item()
    if rank == 0:
        print("-" * 64)
        print(f"total images/sec: {global_batch * timed / elapsed:.2f}")
        print("-" * 64)
        print_peaks(a, dev)
    if a.eval:
        model.eval()
        if a.data_name == "fashion_mnist":
            test_x, test_y = fashion_mnist(a.data_dir, "t10k")
        else:
            test_x, test_y = train_x, train_y
        first, last = len(test_x) * rank // size, len(test_x) * (rank + 1) // size
        correct = 0
        with torch.no_grad(), autocast():
            for i in range(first, last, a.batch_size):
                xb, yb = test_x[i:min(last, i + a.batch_size)], test_y[i:min(last, i + a.batch_size)]
                if cuda:
                    xb, yb = xb.to(dev), yb.to(dev)
                out = model(xb.contiguous(memory_format=fmt))
                correct += (out.argmax(1) == yb).sum().item()
        if a.ddp:
            import torch.distributed as dist
            t = torch.tensor([correct], dtype=torch.float64, device=dev)
            dist.all_reduce(t)
            correct = t.item()
        if rank == 0:
            print(f"Accuracy @ 1 = {correct / len(test_x):.4f} [{len(test_x)} examples]", flush=True)
    if a.ddp:
        import torch.distributed as dist
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
