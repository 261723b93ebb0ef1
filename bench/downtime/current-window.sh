#!/bin/bash
# The current chatmail guide, steps 3-6, at the window, with no human pauses:
# 3. disable mail on OLD; 4. final sync of secrets, spool and mailboxes (OLD -> NEW directly,
# agent forwarded), ownership on NEW; 5. change A/AAAA; 6. activate NEW.
# With WAIT_TTL=1, step 6 waits the lowered TTL first, so that DNS points at NEW everywhere
# before NEW is activated (the guide's "once the DNS changes have propagated").
. "$(dirname "$0")/lib.sh"
mark disable
on_old labmail-ctl disable >>"$LOG"
mark final-sync
on_old_a "rsync -avzHR --delete /var/lib/acme /etc/dkimkeys /var/spool/postfix /home/vmail/mail root@$NEW:/" >>"$LOG"
mark chown
on_new "chown root: -R /var/lib/acme && chown opendkim: -R /etc/dkimkeys && chown vmail: -R /home/vmail/mail" >>"$LOG"
mark swap-dns
swap_dns >>"$LOG"
if [ "${WAIT_TTL:-0}" = 1 ]; then
	mark wait-ttl
	sleep "$TTL"
fi
mark activate
on_new labmail-ctl enable >>"$LOG"
mark done
