"""Early stopping: watch the validation loss, stop when it stops improving, keep the best weights."""
from __future__ import annotations

from .. import models, nn, optim, train
from ..rng import manual_seed
from .common import loader, mnist_flat


def run(quick: bool = False, out=print) -> dict:
    xtr, ytr, xte, yte = mnist_flat()
    xtr, ytr, xv, yv = xtr[:1000], ytr[:1000], xtr[3000:4000], ytr[3000:4000]
    manual_seed(0)
    model = models.mlp(784, (512, 512), 10)
    es = train.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    hist = train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                     loader(xtr, ytr), val_loader=loader(xv, yv, 500, shuffle=False), epochs=10 if quick else 60,
                     callbacks=[es], progress=False)
    out("epoch  train loss  val loss")
    for e, (a, b) in enumerate(zip(hist["loss"], hist["val_loss"])):
        out(f"{e + 1:5d}  {a:10.4f}  {b:8.4f}" + ("   <- best" if e == es.best_epoch else ""))
    final = train.evaluate(model, nn.CrossEntropyLoss(), loader(xv, yv, 500, shuffle=False))["loss"]
    out(f"stopped after epoch {len(hist.epoch)} (patience 3); restored the weights of epoch {es.best_epoch + 1} "
        f"(val loss {final:.4f}) while the training loss kept falling.")
    return {"epochs_run": len(hist.epoch), "best_epoch": es.best_epoch, "best": es.best, "restored_val_loss": final,
            "val_loss": hist["val_loss"]}
