#!/bin/bash
# The current chatmail guide, step 1, run ahead of the window: initial transfer of the mailboxes
# from OLD to NEW, directly, with the operator's agent forwarded to OLD.
. "$(dirname "$0")/lib.sh"
mark initial-sync
on_old_a "rsync -avzH --delete /home/vmail/mail root@$NEW:/home/vmail/" >>"$LOG"
mark initial-done
