"""What Keras cannot tell about its applications without building them: one row of data per model.

`FAMILIES` is keyed by the `keras.applications` module a constructor lives in; its `preprocess_input`
is the model's preprocessing. `CONSTRUCTOR_MODULES` names each constructor's module, so that the zoo is
known without importing Keras (which loads TensorFlow: seconds). `MODEL_FACTS` is keyed by model id.
`tests/test_zoo.py` checks both tables against the installed Keras, both ways. Parameter counts and feature sizes
are for `include_top=False, pooling="avg"`, checked against real builds by `tests/test_zoo.py`.
ImageNet top-1 figures are the published ones (Keras documentation and the papers) at the default size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preprocessing:
    """What a module's `preprocess_input` does to RGB pixels 0-255: its `mode`, and the same in words."""

    mode: str  # "caffe", "tf", "torch" (Keras' imagenet_utils modes) or "none"
    text: str

    def __str__(self) -> str:
        return f"{self.mode}: {self.text}"


@dataclass(frozen=True)
class Family:
    name: str
    module: str  # keras.applications submodule holding the constructor and its preprocess_input
    paper: str
    year: int
    preprocessing: Preprocessing  # what the module's preprocess_input does
    min_size: int = 32
    weight_sizes: tuple[int, ...] = ()  # input sizes with their own weights file ("{size}" in its name)


_CAFFE = Preprocessing("caffe", "RGB to BGR, ImageNet mean subtracted, no scaling")
_TF = Preprocessing("tf", "scaled to [-1, 1]")
_TORCH = Preprocessing("torch", "scaled to [0, 1], ImageNet mean/std normalised")
_RAW = Preprocessing("none", "raw 0-255 (rescaling is inside the model)")

# Tables of data, one row per family and per model, kept unformatted so that each row stays on one line.
# fmt: off
FAMILIES = {
    family.module: family
    for family in (
        Family("ConvNeXt", "convnext", "A ConvNet for the 2020s", 2022, _RAW),
        Family("DenseNet", "densenet", "Densely Connected Convolutional Networks", 2017, _TORCH),
        Family("EfficientNet", "efficientnet", "EfficientNet: Rethinking Model Scaling for CNNs", 2019, _RAW),
        Family("EfficientNetV2", "efficientnet_v2", "EfficientNetV2: Smaller Models and Faster Training", 2021, _RAW),
        Family("InceptionResNetV2", "inception_resnet_v2", "Inception-v4, Inception-ResNet and the Impact of Residual Connections", 2017, _TF, min_size=75),
        Family("InceptionV3", "inception_v3", "Rethinking the Inception Architecture for Computer Vision", 2016, _TF, min_size=75),
        Family("MobileNet", "mobilenet", "MobileNets: Efficient CNNs for Mobile Vision Applications", 2017, _TF, weight_sizes=(128, 160, 192, 224)),
        Family("MobileNetV2", "mobilenet_v2", "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018, _TF, weight_sizes=(96, 128, 160, 192, 224)),
        Family("MobileNetV3", "mobilenet_v3", "Searching for MobileNetV3", 2019, _RAW),
        Family("NASNet", "nasnet", "Learning Transferable Architectures for Scalable Image Recognition", 2018, _TF),
        Family("ResNet", "resnet", "Deep Residual Learning for Image Recognition", 2016, _CAFFE),
        Family("ResNetV2", "resnet_v2", "Identity Mappings in Deep Residual Networks", 2016, _TF),
        Family("VGG16", "vgg16", "Very Deep Convolutional Networks for Large-Scale Image Recognition", 2015, _CAFFE),
        Family("VGG19", "vgg19", "Very Deep Convolutional Networks for Large-Scale Image Recognition", 2015, _CAFFE),
        Family("Xception", "xception", "Xception: Deep Learning with Depthwise Separable Convolutions", 2017, _TF, min_size=71),
    )
}

# keras.applications module: its constructors (one or more models each, in MODEL_FACTS)
CONSTRUCTOR_MODULES = {
    constructor: module
    for module, constructors in {
        "convnext": ("ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge"),
        "densenet": ("DenseNet121", "DenseNet169", "DenseNet201"),
        "efficientnet": ("EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7"),
        "efficientnet_v2": ("EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S"),
        "inception_resnet_v2": ("InceptionResNetV2",),
        "inception_v3": ("InceptionV3",),
        "mobilenet": ("MobileNet",),
        "mobilenet_v2": ("MobileNetV2",),
        "mobilenet_v3": ("MobileNetV3Large", "MobileNetV3Small"),
        "nasnet": ("NASNetLarge", "NASNetMobile"),
        "resnet": ("ResNet50", "ResNet101", "ResNet152"),
        "resnet_v2": ("ResNet50V2", "ResNet101V2", "ResNet152V2"),
        "vgg16": ("VGG16",),
        "vgg19": ("VGG19",),
        "xception": ("Xception",),
    }.items()
    for constructor in constructors
}
# fmt: on


def _row(default_size, params, feature_dim, imagenet_top1, weights_file, **kwargs) -> dict:
    return dict(
        default_size=default_size,
        params=params,
        feature_dim=feature_dim,
        imagenet_top1=imagenet_top1,
        weights_file=weights_file,
        kwargs=kwargs,
    )


# model id: default size, parameters (no top), feature size, ImageNet top-1 %, weights file, variant args
# fmt: off
MODEL_FACTS = {
    "ConvNeXtBase": _row(224, 87_566_464, 1024, 85.3, "convnext_base_notop.h5"),
    "ConvNeXtLarge": _row(224, 196_230_336, 1536, 86.3, "convnext_large_notop.h5"),
    "ConvNeXtSmall": _row(224, 49_454_688, 768, 83.1, "convnext_small_notop.h5"),
    "ConvNeXtTiny": _row(224, 27_820_128, 768, 81.3, "convnext_tiny_notop.h5"),
    "ConvNeXtXLarge": _row(224, 348_147_968, 2048, 86.7, "convnext_xlarge_notop.h5"),
    "DenseNet121": _row(224, 7_037_504, 1024, 75.0, "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "DenseNet169": _row(224, 12_642_880, 1664, 76.2, "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "DenseNet201": _row(224, 18_321_984, 1920, 77.3, "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "EfficientNetB0": _row(224, 4_049_571, 1280, 77.1, "efficientnetb0_notop.h5"),
    "EfficientNetB1": _row(240, 6_575_239, 1280, 79.1, "efficientnetb1_notop.h5"),
    "EfficientNetB2": _row(260, 7_768_569, 1408, 80.1, "efficientnetb2_notop.h5"),
    "EfficientNetB3": _row(300, 10_783_535, 1536, 81.6, "efficientnetb3_notop.h5"),
    "EfficientNetB4": _row(380, 17_673_823, 1792, 82.9, "efficientnetb4_notop.h5"),
    "EfficientNetB5": _row(456, 28_513_527, 2048, 83.6, "efficientnetb5_notop.h5"),
    "EfficientNetB6": _row(528, 40_960_143, 2304, 84.0, "efficientnetb6_notop.h5"),
    "EfficientNetB7": _row(600, 64_097_687, 2560, 84.3, "efficientnetb7_notop.h5"),
    "EfficientNetV2B0": _row(224, 5_919_312, 1280, 78.7, "efficientnetv2-b0_notop.h5"),
    "EfficientNetV2B1": _row(240, 6_931_124, 1280, 79.8, "efficientnetv2-b1_notop.h5"),
    "EfficientNetV2B2": _row(260, 8_769_374, 1408, 80.5, "efficientnetv2-b2_notop.h5"),
    "EfficientNetV2B3": _row(300, 12_930_622, 1536, 82.0, "efficientnetv2-b3_notop.h5"),
    "EfficientNetV2L": _row(480, 117_746_848, 1280, 85.7, "efficientnetv2-l_notop.h5"),
    "EfficientNetV2M": _row(480, 53_150_388, 1280, 85.3, "efficientnetv2-m_notop.h5"),
    "EfficientNetV2S": _row(384, 20_331_360, 1280, 83.9, "efficientnetv2-s_notop.h5"),
    "InceptionResNetV2": _row(299, 54_336_736, 1536, 80.3, "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "InceptionV3": _row(299, 21_802_784, 2048, 77.9, "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "MobileNet:0.25": _row(224, 218_544, 256, 50.6, "mobilenet_2_5_{size}_tf_no_top.h5", alpha=0.25),
    "MobileNet:0.5": _row(224, 829_536, 512, 63.7, "mobilenet_5_0_{size}_tf_no_top.h5", alpha=0.5),
    "MobileNet:0.75": _row(224, 1_832_976, 768, 68.4, "mobilenet_7_5_{size}_tf_no_top.h5", alpha=0.75),
    "MobileNet:1.0": _row(224, 3_228_864, 1024, 70.6, "mobilenet_1_0_{size}_tf_no_top.h5", alpha=1.0),
    "MobileNetV2:0.35": _row(224, 410_208, 1280, 60.3, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}_no_top.h5", alpha=0.35),
    "MobileNetV2:0.5": _row(224, 706_224, 1280, 65.4, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_{size}_no_top.h5", alpha=0.5),
    "MobileNetV2:0.75": _row(224, 1_382_064, 1280, 69.8, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.75_{size}_no_top.h5", alpha=0.75),
    "MobileNetV2:1.0": _row(224, 2_257_984, 1280, 71.8, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5", alpha=1.0),
    "MobileNetV2:1.3": _row(224, 3_766_048, 1664, 74.4, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.3_{size}_no_top.h5", alpha=1.3),
    "MobileNetV2:1.4": _row(224, 4_363_712, 1792, 75.0, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.4_{size}_no_top.h5", alpha=1.4),
    "MobileNetV3Large:0.75": _row(224, 1_808_736, 720, 73.3, "weights_mobilenet_v3_large_224_0.75_float_no_top_v2.h5", alpha=0.75),
    "MobileNetV3Large:1.0": _row(224, 2_996_352, 960, 75.6, "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5", alpha=1.0),
    "MobileNetV3Large:min": _row(224, 1_437_608, 960, 72.3, "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5", alpha=1.0, minimalistic=True),
    "MobileNetV3Small:0.75": _row(224, 583_160, 432, 65.4, "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5", alpha=0.75),
    "MobileNetV3Small:1.0": _row(224, 939_120, 576, 68.1, "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", alpha=1.0),
    "MobileNetV3Small:min": _row(224, 441_000, 576, 61.9, "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5", alpha=1.0, minimalistic=True),
    "NASNetLarge": _row(331, 84_916_818, 4032, 82.5, "nasnet_large_no_top.h5"),
    "NASNetMobile": _row(224, 4_269_716, 1056, 74.4, "nasnet_mobile_no_top.h5"),
    "ResNet101": _row(224, 42_658_176, 2048, 76.4, "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "ResNet101V2": _row(224, 42_626_560, 2048, 77.2, "resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "ResNet152": _row(224, 58_370_944, 2048, 76.6, "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "ResNet152V2": _row(224, 58_331_648, 2048, 78.0, "resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "ResNet50": _row(224, 23_587_712, 2048, 74.9, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "ResNet50V2": _row(224, 23_564_800, 2048, 76.0, "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "VGG16": _row(224, 14_714_688, 512, 71.3, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "VGG19": _row(224, 20_024_384, 512, 71.3, "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "Xception": _row(299, 20_861_480, 2048, 79.0, "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}
# fmt: on
