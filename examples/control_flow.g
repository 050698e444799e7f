# Control flow in .g: a fn is a branch or a loop body (traced once, run as a compiled plan).
#   graphc run examples/control_flow.g --feed x=x.npy --feed n=n.npy --feed p=p.npy
model control_flow {
  input x : f32[T]  # a sequence of any length T
  input n : i32
  input p : bool

  # while: double y, n times (a counting loop)
  fn more(i, y) = i < n
  fn double(i, y) = [i + 1, y * 2.0]
  i, y = while_loop(more, double, [0, x])

  # scan: the running sum of x (TF's tf.scan: every accumulator, stacked)
  fn add(total, v) = total + v
  running = scan(add, x, initializer=0.0)

  # map_fn and cond: square each element, or negate x, as p says
  fn square(v) = v * v
  fn squares() = map_fn(square, x)
  fn negated() = -x
  picked = cond(p, squares, negated)

  output y, running, picked
}
