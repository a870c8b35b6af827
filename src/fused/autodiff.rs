//! The fused ops under autodiff: one graph node per op, whose backward is the op's own
//! fused `*_backward` on the inner backend.

use burn::backend::{
    Backend,
    autodiff::{
        Autodiff,
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind, unary},
    },
    ops::ConvOptions,
    tensor::FloatTensor,
};

use super::extension::FusedOps;

impl<B: Backend + FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        /// The SiLU's node; its state is the input, from which the backward recomputes
        /// σ(x) in the same pass (the composition x · σ(x) keeps both x and σ(x)).
        #[derive(Debug)]
        struct Silu;

        impl<B: Backend + FusedOps> Backward<B, 1> for Silu {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let x = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::silu_backward(x, grad)
                });
            }
        }

        let node = x.node();
        let x = x.into_primitive();
        match Silu.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x.clone(), B::silu(x)),
            OpsKind::UnTracked(prep) => prep.finish(B::silu(x)),
        }
    }

    fn group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> FloatTensor<Self> {
        /// The GroupNorm's node; its state is the inputs, from which the backward
        /// recomputes the statistics (the composition keeps about eight full-size
        /// intermediates instead).
        #[derive(Debug)]
        struct GroupNorm;

        type Inputs<B> = (
            FloatTensor<B>,
            FloatTensor<B>,
            FloatTensor<B>,
            usize,
            f64,
            bool,
        );

        impl<B: Backend + FusedOps> Backward<B, 3> for GroupNorm {
            type State = Inputs<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (x, gamma, beta, groups, epsilon, silu) = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dx, dgamma, dbeta) =
                    B::group_norm_backward(x, gamma, beta, grad, groups, epsilon, silu);
                for (parent, grad) in ops.parents.into_iter().zip([dx, dgamma, dbeta]) {
                    if let Some(node) = parent {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let nodes = [x.node(), gamma.node(), beta.node()];
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        match GroupNorm.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let state = (
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    groups,
                    epsilon,
                    silu,
                );
                prep.finish(state, B::group_norm(x, gamma, beta, groups, epsilon, silu))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::group_norm(x, gamma, beta, groups, epsilon, silu))
            }
        }
    }

    fn group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        silu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        super::extension::group_norm_backward_composed::<Self>(
            x, gamma, beta, grad, groups, epsilon, silu,
        )
    }

    fn convolution(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        /// The convolution's node; its state is the input and the weight, and its
        /// backward computes only the gradients of the parents that are tracked.
        #[derive(Debug)]
        struct Convolution;

        impl<B: Backend + FusedOps> Backward<B, 3> for Convolution {
            type State = (FloatTensor<B>, FloatTensor<B>, ConvOptions<2>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (x, weight, options) = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let parents = ops.parents;
                let wanted = parents.each_ref().map(Option::is_some);
                let (dx, dweight, dbias) =
                    B::convolution_backward(x, weight, grad, options, wanted);
                for (parent, grad) in parents.into_iter().zip([dx, dweight, dbias]) {
                    if let (Some(node), Some(grad)) = (parent, grad) {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let nodes = [x.node(), weight.node(), bias.node()];
        let (x, weight, bias) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        match Convolution.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let state = (x.clone(), weight.clone(), options.clone());
                prep.finish(state, B::convolution(x, weight, bias, options))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::convolution(x, weight, bias, options)),
        }
    }

    fn dropout(x: FloatTensor<Self>, seed: u64, keep: f64) -> FloatTensor<Self> {
        /// The dropout's node; its state is the seed and the keep probability, from
        /// which the backward regenerates the mask.
        #[derive(Debug)]
        struct Dropout;

        impl<B: Backend + FusedOps> Backward<B, 1> for Dropout {
            type State = (u64, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (seed, keep) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::dropout(grad, seed, keep)
                });
            }
        }

        let node = x.node();
        let x = x.into_primitive();
        match Dropout.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((seed, keep), B::dropout(x, seed, keep)),
            OpsKind::UnTracked(prep) => prep.finish(B::dropout(x, seed, keep)),
        }
    }

    fn convolution_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        wanted: [bool; 3],
    ) -> (
        Option<FloatTensor<Self>>,
        Option<FloatTensor<Self>>,
        Option<FloatTensor<Self>>,
    ) {
        // As for the SiLU: a second derivative composes differentiable primitives.
        super::extension::convolution_backward_composed::<Self>(x, weight, grad, options, wanted)
    }

    fn silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        // A second derivative through the fused backward is not provided: compose it from
        // differentiable primitives, so that it stays correct (if unfused).
        super::extension::silu_backward_composed::<Self>(x, grad)
    }
}
