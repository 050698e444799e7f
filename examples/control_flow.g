# Control flow in .g: a fn is a branch or a loop body (traced once, run as a compiled plan).
#   graphc run examples/control_flow.g --feed x=x.npy --feed n=n.npy --feed p=p.npy --train 10
model control_flow {
  input x : f32[T]  # a sequence of any length T
  input n : i32
  input p : bool
  param decay : f32 = 0.5

  # while: double y, n times (a counting loop)
  fn more(i, y) = i < n
  fn double(i, y) = [i + 1, y * 2.0]
  i, y = while_loop(more, double, [0, x])

  # scan: a decaying running sum of x (TF's tf.scan: every accumulator, stacked)
  fn add(total, v) = total * decay + v
  running = scan(add, x, initializer=0.0)

  # map_fn and cond: square each element, or negate x, as p says
  fn square(v) = v * v
  fn squares() = map_fn(square, x)
  fn negated() = -x
  picked = cond(p, squares, negated)

  # training goes through the scan (its gradient is a reverse scan)
  loss = reduce_sum((running - 2.0) ** 2)
  output y, running, picked, loss
  train loss with sgd(lr=0.01)
}
