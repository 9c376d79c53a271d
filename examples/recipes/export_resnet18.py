"""Saves torchvision's resnet18 (random weights) as a traced TorchScript model
for examples/recipes/torchvision-resnet18.json:
    /usr/bin/python3 examples/recipes/export_resnet18.py out/resnet18.pt
"""
import os
import sys

import torch
import torchvision

out = sys.argv[1] if len(sys.argv) > 1 else "out/resnet18.pt"
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
model = torchvision.models.resnet18().eval()
with torch.no_grad():
    torch.jit.trace(model, torch.randn(1, 3, 224, 224)).save(out)
print(out)
