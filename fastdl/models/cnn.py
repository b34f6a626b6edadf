"""The CNN case studies: LeNet-5, AlexNet, VGG-16, ResNet-18/34/50, Inception/GoogLeNet.

With ``num_classes=1000`` on 224x224 input, parameter counts equal torchvision's
(AlexNet 61,100,840; VGG-16 138,357,544; ResNet-18 11,689,512; ResNet-34
21,797,672; ResNet-50 25,557,032; GoogLeNet without auxiliary heads
6,624,904) and parameter names follow torchvision's, so its state dicts load.
``small_input=True`` builds the CIFAR-style variant of each for 32x32 images
(a 3x3 stem, no early down-sampling), and the classifier widths can be
shrunk, so every model trains here.
"""
from __future__ import annotations

from .. import nn
from ..functional import cat


# ------------------------------------------------------------------ LeNet-5
def lenet5(num_classes: int = 10, in_channels: int = 1, activation: str = "tanh", pooling: str = "avg",
           padding: int = 0) -> nn.Sequential:
    """LeCun et al. 1998 on 32x32 input: conv5x5(6), pool, conv5x5(16), pool, fc120, fc84, fc10 (61,706
    parameters).  ``activation`` tanh|relu|sigmoid, ``pooling`` avg (subsampling)|max; ``padding=2``
    takes 28x28 digits directly."""
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    pools = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
    if activation not in acts or pooling not in pools:
        raise ValueError(f"lenet5: activation in {sorted(acts)}, pooling in {sorted(pools)}")
    A, P = acts[activation], pools[pooling]
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=padding), A(), P(2),
        nn.Conv2d(6, 16, 5), A(), P(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), A(), nn.Linear(120, 84), A(), nn.Linear(84, num_classes))


# ------------------------------------------------------------------ AlexNet
class AlexNet(nn.Module):
    def __init__(self, num_classes=1000, in_channels=3, hidden=4096, dropout=0.5, small_input=False):
        super().__init__()
        if small_input:  # 32x32: 3x3 stem, 2x2 pools
            stem = [nn.Conv2d(in_channels, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
            last_pool, pooled = nn.MaxPool2d(2), 4
        else:
            stem = [nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                    nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2)]
            last_pool, pooled = nn.MaxPool2d(3, 2), 6
        self.features = nn.Sequential(*stem, nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), last_pool)
        self.avgpool = nn.AdaptiveAvgPool2d(pooled)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(256 * pooled * pooled, hidden), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
                                        nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def alexnet(num_classes: int = 1000, **kw) -> AlexNet:
    return AlexNet(num_classes, **kw)


# ------------------------------------------------------------------ VGG-16
class VGG(nn.Module):
    CFG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

    def __init__(self, cfg=CFG16, num_classes=1000, batch_norm=False, in_channels=3, hidden=4096, dropout=0.5,
                 avgpool_size=7):
        super().__init__()
        layers, c = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(c, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU())
            c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(avgpool_size)
        self.classifier = nn.Sequential(nn.Linear(c * avgpool_size * avgpool_size, hidden), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def vgg16(num_classes: int = 1000, batch_norm: bool = False, **kw) -> VGG:
    """VGG-16 (configuration D); ``vgg16(10, hidden=256, avgpool_size=1)`` is a 32x32-sized one."""
    return VGG(VGG.CFG16, num_classes, batch_norm, **kw)


def vgg16_bn(num_classes: int = 1000, **kw) -> VGG:
    return vgg16(num_classes, batch_norm=True, **kw)


# ------------------------------------------------------------------ ResNet
class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity shortcut (a 1x1 projection when the shape changes)."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's v1.5), 1x1 expand x4, plus the shortcut."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, in_channels=3, small_input=False, width=64):
        super().__init__()
        self.inplanes = width
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.layer1 = self._make(block, width, layers[0])
        self.layer2 = self._make(block, width * 2, layers[1], 2)
        self.layer3 = self._make(block, width * 4, layers[2], 2)
        self.layer4 = self._make(block, width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

    def _make(self, block, planes, blocks, stride=1):
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes=1000, **kw):
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, **kw)


def resnet34(num_classes=1000, **kw):
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, **kw)


def resnet50(num_classes=1000, **kw):
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, **kw)


# ------------------------------------------------------------------ Inception / GoogLeNet
class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU, torchvision's GoogLeNet unit."""

    def __init__(self, cin, cout, kernel_size, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """The inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> "5x5" | 3x3 max-pool -> 1x1, concatenated on channels.

    The 1x1 convolutions are the bottlenecks that keep it cheap.  torchvision's
    GoogLeNet uses a 3x3 kernel in the "5x5" branch (kept for its pretrained
    weights); ``branch3_kernel=5`` gives the paper's 5x5.
    """

    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, branch3_kernel=3):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, 1),
                                     BasicConv2d(ch5x5red, ch5x5, branch3_kernel, padding=branch3_kernel // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True), BasicConv2d(cin, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=1)


def inception_module(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, branch3_kernel=5) -> Inception:
    """One inception module as the curriculum draws it (a real 5x5 branch by default)."""
    return Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, branch3_kernel)


class GoogLeNet(nn.Module):
    """GoogLeNet (Szegedy et al. 2014) as torchvision builds it, without the auxiliary classifiers."""

    def __init__(self, num_classes=1000, in_channels=3, dropout=0.2, small_input=False):
        super().__init__()
        if small_input:
            self.conv1 = BasicConv2d(in_channels, 64, 3, padding=1)
            self.maxpool1 = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_channels, 64, 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.Identity() if small_input else nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for m in (self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e):
            x = m(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


def googlenet(num_classes: int = 1000, **kw) -> GoogLeNet:
    return GoogLeNet(num_classes, **kw)
