# two_layer.g — the two-layer network of SPEC §8: relu(x @ w1) @ w2, sum of squared error.
#
#   graphc compile examples/two_layer.g --dim N=64
#   graphc run examples/two_layer.g --feed x=x.npy --feed y=y.npy --train 100
model two_layer {
  input x : f32[N, 1000]
  input y : f32[N, 10]
  param w1 : f32[1000, 100] = normal(stddev=0.01, seed=1)
  param w2 : f32[100, 10] = normal(stddev=0.01, seed=2)

  h = relu(x @ w1)
  pred = h @ w2
  loss = reduce_sum((pred - y) ** 2)

  output pred, loss
  train loss with sgd(lr=1e-6)
}
