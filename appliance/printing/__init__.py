"""Printing the photo booth's photos through CUPS, with a status the screen can tell the shopper.

The API the core's photo desk uses (all of it; everything else in the package is its parts)::

    desk = PrintService.from_config(config, alerts, state_dir, on_outcome)   # None when [printing] enabled = false
    desk.submit(photo_id, image_path, labels)    # never blocks; the print-size JPEG the compositor wrote;
                                                 # labels: {"campaign": …, "session": …} (str or None)
    desk.status(photo_id) -> PrintStatus | None  # .state: waiting | printing | printed | failed
                                                 # .screen: the line for the shopper, .reason: why (logs, events)
    desk.printer_ok -> bool                      # offer printing at all? (False: say "scan the QR")
    desk.forget(photo_id)                        # drop an ended status once shown
    desk.stop()                                  # requests in flight kept: taken up at the next start

``on_outcome(photo_id, status, labels)`` is called once per photo, on the desk's thread, when it ends
(``status.state`` printed or failed), with the ``labels`` given to ``submit`` — also for a photo
asked for before a restart, which ``status`` no longer knows: the core turns it into the
``photo_printed`` / ``print_failed`` event (``status.reason`` is the failure's reason) with the
labels' campaign and session; it must be quick.  ``labels["campaign"]`` is what the daily page limit
counts by.  The desk keeps its requests in ``<state_dir>/printing``: after a restart a photo already
handed to CUPS is followed to its end, one not yet handed over ends failed (``the kiosk restarted
before it was printed``) and is never printed.  The desk raises and clears the alert ``printer``
(appliance.alerts) with the printer's reason.  What the screen says: ``printing…``, ``printed: take
your photo below``, ``printer needs attention: scan the QR`` and, past the day's limit, ``no more
prints today: scan the QR`` (the constants in ``service``).

Modules: ``layout`` (the page CUPS prints), ``printer`` (one CUPS queue through pycups), ``counter``
(pages per campaign per day), ``service`` (the worker).
"""

from appliance.printing.service import PrintService, PrintStatus

__all__ = ["PrintService", "PrintStatus"]
