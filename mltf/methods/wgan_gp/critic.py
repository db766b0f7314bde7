"""The critic D(y, z) of seed 000 and fext, the frozen feature extractor it
conditions on."""

import gin
import keras


@keras.saving.register_keras_serializable(package="mltf")
class LabelCritic(keras.Model):
    """The critic D(y, z): label set and image features to one score.

    Args:
      num_labels: C.
      projection_dim: width of the linear projections of y and z (256).
      hidden_dim: width of the dense layers (512).
      depth: number of dense layers (8).
      negative_slope: leaky ReLU slope.
      conditional: False gives the unconditional ablation D(y).
      **kwargs: ``keras.Model`` arguments.
    """

    def __init__(self, num_labels: int, projection_dim: int = 256,
                 hidden_dim: int = 512, depth: int = 8, negative_slope: float = 0.2,
                 conditional: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.projection_dim = int(projection_dim)
        self.hidden_dim = int(hidden_dim)
        self.depth = int(depth)
        self.negative_slope = float(negative_slope)
        self.conditional = bool(conditional)
        self.label_projection = keras.layers.Dense(self.projection_dim, name="label_projection")
        self.feature_projection = (keras.layers.Dense(self.projection_dim,
                                                      name="feature_projection")
                                   if self.conditional else None)
        self.hidden = [keras.layers.Dense(self.hidden_dim, name=f"dense_{i}")
                       for i in range(self.depth)]
        self.activation = keras.layers.LeakyReLU(self.negative_slope)
        self.score = keras.layers.Dense(1, dtype="float32", name="score")

    def build(self, labels_shape, features_shape=None):
        """Creates every weight from the shapes of ``call``'s arguments, so a
        critic loaded on its own (``keras.models.load_model``) is built before
        its saved weights arrive."""
        self.label_projection.build(labels_shape)
        width = self.projection_dim
        if self.conditional:
            if features_shape is None:
                raise ValueError("a conditional critic needs image features")
            self.feature_projection.build(features_shape)
            width += self.projection_dim
        for layer in self.hidden:
            layer.build((None, width))
            width = self.hidden_dim
        self.score.build((None, width))
        self.built = True

    def call(self, labels, features=None):
        h = self.label_projection(labels)
        if self.conditional:
            if features is None:
                raise ValueError("a conditional critic needs image features")
            h = keras.ops.concatenate([h, self.feature_projection(features)], axis=-1)
        for layer in self.hidden:
            h = self.activation(layer(h))
        return keras.ops.squeeze(self.score(h), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"num_labels": self.num_labels, "projection_dim": self.projection_dim,
                       "hidden_dim": self.hidden_dim, "depth": self.depth,
                       "negative_slope": self.negative_slope,
                       "conditional": self.conditional})
        return config


def frozen_copy(backbone: keras.Model) -> keras.Model:
    """A frozen copy of a (pretrained) backbone: seed 000's fext."""
    clone = keras.models.clone_model(backbone)
    clone.set_weights(backbone.get_weights())
    clone.trainable = False
    return clone


@gin.configurable(module="mltf")
def build_critic(num_labels: int, projection_dim: int = 256, hidden_dim: int = 512,
                 depth: int = 8, negative_slope: float = 0.2,
                 conditional: bool = True) -> LabelCritic:
    """The critic from gin (``mltf.build_critic.*``); see ``LabelCritic``."""
    return LabelCritic(num_labels, projection_dim=projection_dim, hidden_dim=hidden_dim,
                       depth=depth, negative_slope=negative_slope,
                       conditional=conditional, name="critic")
