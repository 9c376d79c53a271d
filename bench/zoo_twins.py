"""Python twins of the Fashion-MNIST zoo models (src/models/zoo.cpp), for
PyTorch's own INT8 (torch.ao FX needs a model's Python source, which a
TorchScript file written by `compress train` does not carry).

    twin = zoo_twins.twin(torch.jit.load("resnet.pt"))   # nn.Module, same weights

Each twin has the zoo model's module names, so the TorchScript model's state
dict loads into it strictly; widths come from the weights' shapes. twin()
checks that the twin computes what the TorchScript model does (eval mode)
and raises if it does not: a zoo change this file missed is an error, not
a wrong benchmark. Activations are modules (nn.ReLU, not torch.relu) where
the zoo applies them after a batch norm or a linear layer, so that torch.ao
FX fuses them into the quantized convolution as it does for torchvision's
models (with torch.relu it left each ReLU in float between a dequantize and
a quantize, and its INT8 resnet ran at its FP32 speed)."""
import torch
from torch import nn


class _SmallCNN(nn.Module):
    def __init__(self, sd):
        super().__init__()
        c = [sd[f"features.{i}.weight"].shape[0] for i in (0, 4, 8)]
        hidden, classes = sd["classifier.2.weight"].shape[0], sd["classifier.5.weight"].shape[0]
        layers, cin = [], 1
        for cout in c:
            layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(cin * 9, hidden), nn.ReLU(),
                                        nn.Dropout(0.3), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class _SqueezeExcitation(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, r), nn.Linear(r, c)
        self.relu, self.sigmoid = nn.ReLU(), nn.Sigmoid()

    def forward(self, x):
        s = self.sigmoid(self.fc2(self.relu(self.fc1(x.mean([2, 3])))))
        return x * s.unsqueeze(2).unsqueeze(3)


class _BasicBlock(nn.Module):
    def __init__(self, sd, prefix, stride):
        super().__init__()
        cout, cin = sd[prefix + "conv1.weight"].shape[:2]
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.se = _SqueezeExcitation(cout, sd[prefix + "se.fc1.weight"].shape[0]) if prefix + "se.fc1.weight" in sd else None
        self.downsample = None
        if prefix + "downsample.0.weight" in sd:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return torch.relu(out + (self.downsample(x) if self.downsample is not None else x))


class _ResNet(nn.Module):  # also the senet: its blocks have "se" children
    def __init__(self, sd):
        super().__init__()
        w0 = sd["conv1.weight"].shape[0]
        self.conv1, self.bn1 = nn.Conv2d(1, w0, 3, 1, 1, bias=False), nn.BatchNorm2d(w0)
        self.relu, self.maxpool = nn.ReLU(), nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(_BasicBlock(sd, "layer1.0.", 1))
        self.layer2 = nn.Sequential(_BasicBlock(sd, "layer2.0.", 2))
        self.layer3 = nn.Sequential(_BasicBlock(sd, "layer3.0.", 2))
        self.fc = nn.Linear(*reversed(sd["fc.weight"].shape))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _conv_bn_relu6(cin, cout, k, stride, groups):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU6())


class _InvertedResidual(nn.Module):
    def __init__(self, sd, prefix, stride):
        super().__init__()
        expands = sd[prefix + "conv.0.0.weight"].shape[-1] == 1  # a 1x1 expansion first, else the depthwise
        first = sd[prefix + "conv.0.0.weight"]
        cin = first.shape[1] if expands else first.shape[0]
        hidden = first.shape[0]
        cout = sd[prefix + f"conv.{2 if expands else 1}.weight"].shape[0]
        layers = [_conv_bn_relu6(cin, hidden, 1, 1, 1)] if expands else []
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, hidden), nn.Conv2d(hidden, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class _MobileNetV2(nn.Module):
    STRIDES = [2, 1, 1, 2, 1, 2, 1]  # zoo.cpp's table: (t, c, n, s) = (1,16,1,2) (4,24,2,1) (4,32,2,2) (4,64,2,2)

    def __init__(self, sd):
        super().__init__()
        stem = sd["features.0.0.weight"].shape[0]
        blocks = [_conv_bn_relu6(1, stem, 3, 1, 1)]
        blocks += [_InvertedResidual(sd, f"features.{i + 1}.", s) for i, s in enumerate(self.STRIDES)]
        last = sd[f"features.{len(blocks)}.0.weight"]
        blocks.append(_conv_bn_relu6(last.shape[1], last.shape[0], 1, 1, 1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(*reversed(sd["classifier.1.weight"].shape)))

    def forward(self, x):
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class _EncoderBlock(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.dropout = nn.Dropout(0.1)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(0.1), nn.Linear(mlp, dim), nn.Dropout(0.1))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.dropout(self.self_attention(y, y, y, need_weights=False)[0])
        return x + self.mlp(self.ln_2(x))


class _VisionTransformer(nn.Module):
    def __init__(self, sd, heads):
        super().__init__()
        dim, _, patch, _ = sd["conv_proj.weight"].shape
        mlp = sd["encoder.0.mlp.0.weight"].shape[0]
        depth = len({k.split(".")[1] for k in sd if k.startswith("encoder.")})
        self.conv_proj = nn.Conv2d(1, dim, patch, patch)
        self.class_token = nn.Parameter(torch.zeros_like(sd["class_token"]))
        self.pos_embedding = nn.Parameter(torch.zeros_like(sd["pos_embedding"]))
        self.encoder = nn.Sequential(*[_EncoderBlock(dim, heads, mlp) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(*reversed(sd["head.weight"].shape))

    def forward(self, x):
        x = torch.flatten(self.conv_proj(x), 2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.size(0), -1, -1), x], 1) + self.pos_embedding
        return self.head(self.ln(self.encoder(x))[:, 0])


def twin(scripted, example=None):
    """An nn.Module computing what the zoo TorchScript model `scripted` does,
    with its weights. ValueError for a model this file has no twin for, or
    whose twin computes something else on `example` (default: 4 random
    1x28x28 images)."""
    kind = scripted.original_name
    sd = {k: v for k, v in scripted.state_dict().items()}
    if kind == "SmallCNN":
        model = _SmallCNN(sd)
    elif kind in ("ResNet", "SEResNet"):
        model = _ResNet(sd)
    elif kind == "MobileNetV2":
        model = _MobileNetV2(sd)
    elif kind == "VisionTransformer":
        model = _VisionTransformer(sd, getattr(scripted.encoder, "0").self_attention.num_heads)
    else:
        raise ValueError(f"no Python twin for a zoo model of class {kind}")
    model.load_state_dict(sd, strict=True)
    model.eval()
    scripted.eval()
    x = torch.randn(4, 1, 28, 28) if example is None else example
    with torch.no_grad():
        want, got = scripted(x), model(x)
    err = (want - got).abs().max().item() / max(want.abs().max().item(), 1e-12)
    if not err < 1e-4:
        raise ValueError(f"the Python twin of {kind} differs from the TorchScript model (relative error {err:.2e})")
    return model
