//! The `tcp` kind: only whether a port accepts connections, for engines dbvigil cannot
//! speak to natively (SQL Server, Oracle, ...).

use super::{Phase, PhaseRunner, ProbeContext, ProbeFuture, Prober, net};

pub struct TcpProber {
    host: String,
    port: u16,
}

impl TcpProber {
    pub fn new(host: &str, port: u16) -> Self {
        TcpProber {
            host: host.to_owned(),
            port,
        }
    }
}

impl Prober for TcpProber {
    fn probe<'a>(&'a mut self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(async move {
            let mut run = PhaseRunner::new(ctx.timeout, &ctx.trace);
            run.run(
                Phase::Tcp,
                net::tcp_connect(&self.host, self.port, &ctx.trace),
            )
            .await;
            run.finish(None, None)
        })
    }
}
