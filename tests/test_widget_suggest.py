"""*Suggest next* in the widget, driven as a user would, with a tiny random-weight model."""

from __future__ import annotations

import threading

from qtpy.QtCore import Qt, QTimer

from napari_sansa.plugin.core.suggestion import NO_RESULTS
from napari_sansa.samples import cells


def annotate(widget, image_name, plane=None):
    """Paint the true nuclei of a sample image (or a box on a plane of a stack) as a reference."""
    widget.prompt_image.setCurrentText(image_name)
    layer = widget.add_prompt_layer("labels")
    if plane is None:
        layer.data[cells(6)[int(image_name.split()[-1])][1] == 1] = 1
    else:
        layer.data[plane, 100:140, 100:150] = 1
    layer.refresh()
    return layer


def run_and_wait(widget, qtbot):
    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)


def expected(widget):
    """The engine's ranking of the widget's unannotated results: the name it should suggest."""
    job = widget.plan()
    pool = [(k, s) for k, s in job.targets if k not in job.reference_keys and k in widget.scores]
    images = [s.image(k.plane) for k, s in pool]
    order = widget.model.rank_for_annotation(
        job.references, images, scores=[widget.scores[k] for k, _ in pool]
    )
    key, source = pool[order[0]]
    return key.describe(source.name)


def test_suggest_next_shows_the_image_unlike_the_references_and_never_an_annotated_one(
    open_widget, qtbot, encoder_calls
):
    viewer, widget = open_widget()
    odd = viewer.layers["cells 3"]
    odd.data = 255 - odd.data  # a stained differently: unlike the reference
    annotate(widget, "cells 0")
    run_and_wait(widget, qtbot)
    calls = encoder_calls(widget.model)

    qtbot.mouseClick(widget.suggestion_panel.button, Qt.LeftButton)
    assert calls == []  # the run's features are cached
    name = widget.suggest_next()
    assert name == expected(widget) == "cells 3"
    assert viewer.layers.selection.active is odd
    assert [layer.name for layer in viewer.layers][-2:] == ["cells 3", "cells 3 [SANSA]"]  # on top
    assert widget.prompt_image.currentText() == "cells 3"
    assert widget.suggestion_panel.reason.text().startswith("Annotate cells 3 next:")

    annotate(widget, "cells 3")  # the user follows the suggestion
    name = widget.suggest_next()
    assert name not in {"cells 0", "cells 3"}
    assert name == expected(widget)
    assert calls == []


def test_suggest_next_names_a_plane_of_a_stack_and_goes_there(open_widget, qtbot):
    viewer, widget = open_widget("cells_stack")
    annotate(widget, "cells stack", plane=3)
    run_and_wait(widget, qtbot)
    name = widget.suggest_next()
    assert name == expected(widget)
    plane = int(name.split("[")[1].rstrip("]"))
    assert plane != 3 and name == f"cells stack [{plane}]"
    assert viewer.dims.current_step[0] == plane


def test_suggest_next_before_a_run_says_to_run_first(open_widget, errors):
    _, widget = open_widget()
    annotate(widget, "cells 0")
    assert widget.suggest_next() is None
    assert errors == [NO_RESULTS]


def test_candidates_are_the_unannotated_results_and_the_reason_ranks_them():
    from napari_sansa.engine.runs.annotation_ranking import Candidate
    from napari_sansa.plugin.core.session import ImageSource, Job, TargetKey
    from napari_sansa.plugin.core.suggestion import candidates, reason

    source = ImageSource("a", "stack", cells(1)[0][0][None], lead=1)
    keys = [TargetKey("a", (z,)) for z in range(4)]
    job = Job([], [keys[0]], [(k, source) for k in keys])  # plane 0 annotated, and checked
    assert candidates(job, {k: 0.5 for k in keys[:3]}) == [(keys[1], source), (keys[2], source)]

    ranked = [Candidate(0, 0.6, 0.2, 0.9), Candidate(1, 0.8, 0.1, 0.8), Candidate(2, 0.1, 0.3, 0.5)]
    assert reason("stack [1]", ranked[0], ranked) == (
        "Annotate stack [1] next: 2nd least confident result (0.40) and 2nd least like the "
        "references (feature distance 0.20) of 3."
    )


def ticking():
    """A 5 ms timer on napari's event loop, counting its ticks."""
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    return timer, ticks


def test_suggest_next_without_cached_features_encodes_in_a_worker_while_napari_goes_on(
    open_widget, qtbot, encoder_calls
):
    viewer, widget = open_widget()
    annotate(widget, "cells 0")
    run_and_wait(widget, qtbot)
    cached = widget.suggest_next()  # the run's features: at once
    widget.model.clear_cache()  # as Adapt leaves it
    calls = encoder_calls(widget.model)
    timer, ticks = ticking()
    worker = widget.suggest_next()
    assert not isinstance(worker, str) and worker is not None  # returned at once: the work goes on
    assert widget.suggestion is None
    assert not widget.suggestion_panel.job.cancel_button.isHidden()  # progress and Cancel in the dock
    qtbot.waitUntil(lambda: widget.suggestion is not None, timeout=120_000)
    timer.stop()
    assert calls  # the images were encoded (in the worker)
    assert ticks  # napari's event loop went on meanwhile
    assert widget.suggestion == cached == expected(widget)
    assert widget.prompt_image.currentText() == cached.split(" [")[0]
    assert widget.suggestion_panel.reason.text().startswith(f"Annotate {cached} next:")


def test_suggest_next_while_the_model_is_busy_waits_for_it_in_a_worker(open_widget, qtbot):
    _, widget = open_widget()
    annotate(widget, "cells 0")
    run_and_wait(widget, qtbot)
    taken, release = threading.Event(), threading.Event()

    def adapt():  # another job (Adapt) holds the model
        with widget.model.runtime.lock:
            taken.set()
            release.wait(60)

    thread = threading.Thread(target=adapt)
    thread.start()
    taken.wait(10)
    timer, ticks = ticking()
    worker = widget.suggest_next()
    assert not isinstance(worker, str) and worker is not None  # napari does not wait for the lock
    qtbot.wait(100)
    assert ticks and widget.suggestion is None
    release.set()
    qtbot.waitUntil(lambda: widget.suggestion is not None, timeout=60_000)
    timer.stop()
    thread.join()
    assert widget.suggestion == expected(widget)
