# mlp_classifier.g — a two-hidden-layer MLP for 10 classes: softmax cross-entropy, Adam.
# `fn` defines a layer once; `const` names the sizes.
#
#   graphc run examples/mlp_classifier.g --feed data.npz --train 200 --fetch loss,accuracy

const D = 64  # input features (8x8 digits)
const H = 128  # hidden units
const C = 10  # classes

fn dense(x, w, b) = x @ w + b

model mlp_classifier {
  input x : f32[N, D]
  input labels : i64[N]

  param w1 : f32[D, H] = glorot_uniform(seed=1)
  param b1 : f32[H] = zeros()
  param w2 : f32[H, H] = glorot_uniform(seed=2)
  param b2 : f32[H] = zeros()
  param w3 : f32[H, C] = glorot_uniform(seed=3)
  param b3 : f32[C] = zeros()

  h1 = relu(dense(x, w1, b1))
  h2 = relu(dense(h1, w2, b2))
  logits = dense(h2, w3, b3)
  probs = softmax(logits)
  loss = reduce_mean(sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
  accuracy = reduce_mean(cast(argmax(logits, axis=1) == labels, f32))

  output probs, loss, accuracy
  train loss with adam(lr=0.01)
}
