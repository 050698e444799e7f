# linear_regression.g — y ≈ x @ w + b, mean squared error, plain gradient descent.
#
#   graphc run examples/linear_regression.g --feed x=x.csv --feed y=y.csv --train 500
model linear_regression {
  input x : f32[N, 1]
  input y : f32[N, 1]
  param w : f32[1, 1] = zeros()
  param b : f32[1] = zeros()

  pred = x @ w + b
  loss = reduce_mean((pred - y) ** 2)

  output pred, loss
  train loss with sgd(lr=0.1)
}
